"""Reliability runs (``make soak``): soak at a fraction of saturation, fuzzing, Triton killed under load."""
