"""The parts that play a bus (driver, voters, decider, executor), the runner they share, and the
assembly that wires an agent."""
