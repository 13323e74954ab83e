"""Offline jobs without Ray, one CLI each: world, tree, curation, training, ablations, evaluation."""
