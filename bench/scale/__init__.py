"""``python -m bench.scale`` (``make bench-scale``): how each stage's cost grows with the catalogue (docs/scale.md)."""
