"""Voter configurations to compare: which voters vote and how the decider combines them.

A configuration file (TOML) lists them in the order the report shows them::

    rules = "agentdojo-rules.toml"        # the rule voter's file, relative to this one
    labels = "agentdojo-labels"           # the ifc voter's labels: one DEPLOYMENT.toml per suite

    [[configuration]]
    name = "provenance + llm"
    voters = ["provenance", "llm"]        # any of: rule, provenance, ifc, llm (none: no voter)
    decider = { kind = "veto", params = { kinds = ["provenance", "llm"] } }

``decider`` is a decider policy document (agent/core/policy.py) without its version. Each
AgentDojo
suite is one deployment: the ifc voter of a suite's runs reads ``labels/<suite>.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logact.agent.core.policy import Policy, PolicyError
from logact.agent.judgement.ifc import Labels, LabelsError, load_labels
from logact.agent.judgement.rules import RuleError, RuleSet, load_rules

VOTER_KINDS = ("rule", "provenance", "ifc", "llm")


class ConfigurationError(ValueError):
    """The configuration file is invalid; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Configuration:
    name: str
    voters: tuple[str, ...]
    policy: Policy

    @property
    def escalates(self) -> bool:
        """Whether a voter of this configuration may ask a person."""
        return "ifc" in self.voters

    @property
    def slug(self) -> str:
        """The configuration's name as a bus-id component."""
        return "".join(c if c.isalnum() else "-" for c in self.name).strip("-") or "none"


@dataclass(frozen=True, slots=True)
class ConfigurationSet:
    configurations: tuple[Configuration, ...]
    rules: RuleSet | None
    labels: Mapping[str, Labels] = field(default_factory=dict)  # deployment -> labels

    @property
    def needs_model(self) -> bool:
        return any("llm" in c.voters for c in self.configurations)

    def labels_for(self, deployment: str) -> Labels:
        if deployment not in self.labels:
            known = ", ".join(sorted(self.labels)) or "none"
            raise ConfigurationError(f"no ifc labels for {deployment!r} (have: {known})")
        return self.labels[deployment]


def _configuration(path: Path, index: int, doc: Any) -> Configuration:
    where = f"{path}: configuration {index + 1}"
    if not isinstance(doc, dict) or set(doc) - {"name", "voters", "decider"}:
        raise ConfigurationError(f"{where}: needs exactly name, voters and decider")
    name, voters, decider = doc.get("name"), doc.get("voters"), doc.get("decider")
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{where}: name must be a non-empty string")
    if not isinstance(voters, list) or any(v not in VOTER_KINDS for v in voters):
        raise ConfigurationError(f"{where} ({name}): voters must be a list of {VOTER_KINDS}")
    if len(set(voters)) != len(voters):
        raise ConfigurationError(f"{where} ({name}): a voter is listed twice")
    if not isinstance(decider, dict):
        raise ConfigurationError(f"{where} ({name}): decider must be a policy table")
    try:
        policy = Policy.from_doc({**decider, "version": 1})
    except PolicyError as exc:
        raise ConfigurationError(f"{where} ({name}): {exc}") from None
    return Configuration(name, tuple(voters), policy)


def load_configurations(path: str | Path, only: tuple[str, ...] = ()) -> ConfigurationSet:
    """Read and check a configuration file; ``only`` keeps the named configurations."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    entries = doc.get("configuration")
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f"{path}: needs at least one [[configuration]]")
    configurations = tuple(_configuration(path, i, d) for i, d in enumerate(entries))
    names = [c.name for c in configurations]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{path}: configuration names must be unique")
    if unknown := sorted(set(only) - set(names)):
        raise ConfigurationError(f"{path}: no configuration named {', '.join(unknown)}")
    if only:
        configurations = tuple(c for c in configurations if c.name in only)
    rules = None
    if any("rule" in c.voters for c in configurations):
        if not isinstance(doc.get("rules"), str):
            raise ConfigurationError(f'{path}: a rule voter needs rules = "FILE"')
        try:
            rules = load_rules(path.parent / doc["rules"])
        except (OSError, RuleError) as exc:
            raise ConfigurationError(f"{path}: rules: {exc}") from None
    labels: dict[str, Labels] = {}
    if any("ifc" in c.voters for c in configurations):
        if not isinstance(doc.get("labels"), str):
            raise ConfigurationError(f'{path}: an ifc voter needs labels = "DIRECTORY"')
        directory = path.parent / doc["labels"]
        try:
            labels = {f.stem: load_labels(f) for f in sorted(directory.glob("*.toml"))}
        except LabelsError as exc:
            raise ConfigurationError(f"{path}: labels: {exc}") from None
        if not labels:
            raise ConfigurationError(f"{path}: no labels (*.toml) in {directory}")
    return ConfigurationSet(configurations, rules, labels)
