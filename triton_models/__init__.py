"""Triton Inference Server integration: launcher, model configs and the python-backend models."""
