"""Data layer: input schema, synthetic world, cluster tree, serendipity curation, frame sampling."""
