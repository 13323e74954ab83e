"""Planner gRPC service: names serendipitous interest clusters for a context video."""
