"""The configuration files LogAct ships (TOML), as package data: a normal install finds them
as an editable one does, without paths relative to a source checkout."""

from importlib.resources import files
from pathlib import Path


def shipped(name: str) -> Path:
    """The shipped file ``name`` (e.g. ``"agentdojo-voters.toml"``)."""
    return Path(str(files(__name__).joinpath(name)))
