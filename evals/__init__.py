"""Evaluations of LogAct against third-party benchmarks (``logact eval``)."""
