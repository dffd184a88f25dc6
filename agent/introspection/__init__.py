"""Reading a bus back: timelines, digests, health, recovery, the supervisor and the safety
checker."""
