"""Offline jobs (``python -m ray_jobs.<job>``): world generation, tree building, curation, training, inference."""
