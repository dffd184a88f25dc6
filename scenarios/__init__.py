"""Runnable scenarios for LogAct's supervision features (checksum advice, swarm gossip)."""
