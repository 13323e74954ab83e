"""Batch jobs behind the plan table: popular-corpus selection, sharded frame decoding, incremental inference.

The ``ray_jobs.popular_corpus``, ``ray_jobs.decode_frames`` and ``ray_jobs.batch_plans`` command lines are thin
wrappers over these modules; docs/ray_jobs.md describes the formats and the incremental/resume semantics.
"""
