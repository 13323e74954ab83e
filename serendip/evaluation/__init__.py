"""Offline A/B evaluation (paper §4): arms, simulated users, replay metrics, buckets, report."""
