"""The parts that play a bus (driver, voters, decider, executor), the runner they share, and the
assembly that wires an agent."""

from logact.agent.components.assembly import AgentSpec, Model, assemble, run_task
from logact.agent.components.decider import Decider
from logact.agent.components.driver import Driver
from logact.agent.components.executor import Executor
from logact.agent.components.runner import Component, run_agent, run_component
from logact.agent.components.voters import Ballot, Judges, Voter

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
    "assemble",
    "run_agent",
    "run_component",
    "run_task",
]
