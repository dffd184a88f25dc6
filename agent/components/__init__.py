"""The parts that play a bus (driver, voters, decider, executor), the runner they share, the
assembly that wires an agent (and its gate), and the watcher that serves every bus under a
prefix."""

from logact.agent.components.assembly import AgentSpec, Model, assemble, gate, run_task
from logact.agent.components.decider import Decider
from logact.agent.components.driver import Driver
from logact.agent.components.executor import Executor
from logact.agent.components.runner import Component, run_agent, run_component
from logact.agent.components.voters import Ballot, Judges, Voter
from logact.agent.components.watcher import WatchLimits, watch

__all__ = [
    "AgentSpec",
    "Ballot",
    "Component",
    "Decider",
    "Driver",
    "Executor",
    "Judges",
    "Model",
    "Voter",
    "WatchLimits",
    "assemble",
    "gate",
    "run_agent",
    "run_component",
    "run_task",
    "watch",
]
