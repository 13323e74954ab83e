"""Load-test harness: one job per module.

``calls`` (a timed request and its status name), ``stats`` (percentiles, step figures), ``closed_loop``,
``open_loop`` (coordinated-omission safe), ``sweep`` (concurrency sweep, saturation finder), ``mix`` (request
mix from artifacts), ``targets`` (gRPC and Triton targets, loopback guard), ``stack`` (the system under test as
processes), ``report`` (JSON, CSV, PNG), ``machine`` (where it ran), ``pipeline`` (a test-size artifact root).
"""
