"""The plan explorer (``make explore``): a local web page over a running Planner and Retriever.

A composition root like ``serendip.serve``: it talks to the services over gRPC only, as a ranking stack
would, and reads the artifact root for what a person needs to see beside the answers (the catalogue, the
cluster tree, thumbnails and the frames the MLLM sees) and the reports directory for evaluation and benchmark
figures. It never imports the services' code. See ``docs/explorer.md``.
"""
