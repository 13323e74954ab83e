"""Offline data algorithms: the synthetic world, tree building, serendipity curation, popular corpus."""
