"""Artifact contracts: one module per artifact kind (its name, schema, reader and writer) over ``store``."""
