"""Retriever gRPC service: sequence-model retrieval restricted to planned interest clusters."""
