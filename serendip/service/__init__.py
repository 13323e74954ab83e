"""Shared gRPC service runtime: server core, error mapping, validation, metrics and logs."""
