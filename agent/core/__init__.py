"""The vocabulary of a bus (its entry types) and the fold that reads a bus into state."""
