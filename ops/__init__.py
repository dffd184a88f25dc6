"""Local process supervision: node processes (``local_cluster``), loopback ports (``ports``) and
test configurations (``test_config``), for the CLI, benchmarks, chaos runs and tests."""
