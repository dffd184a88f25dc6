"""Voter configuration files (evals/configurations.py): what is accepted, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from logact.evals.configurations import ConfigurationError, load_configurations

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str, rules: str | None = 'default = "allow"\n') -> Path:
    if rules is not None:
        (tmp_path / "rules.toml").write_text(rules)
    path = tmp_path / "voters.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["agentdojo-voters.toml", "agentdojo-voters-llm.toml"])
def test_the_shipped_files_load(name: str) -> None:
    loaded = load_configurations(ROOT / "config" / name)
    assert loaded.configurations and loaded.rules is not None
    assert loaded.needs_model == (name == "agentdojo-voters-llm.toml")


def test_only_keeps_the_named_configurations_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[configuration]]
name = "a"
voters = []
decider = { kind = "on_by_default" }
[[configuration]]
name = "b"
voters = ["provenance"]
decider = { kind = "veto", params = { kinds = ["provenance"] } }
""",
    )
    loaded = load_configurations(path, only=("b",))
    assert [c.name for c in loaded.configurations] == ["b"]
    assert loaded.configurations[0].policy.kind == "veto"
    assert loaded.rules is None  # no rule voter: the rules are not needed


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "at least one [[configuration]]"),
        ("[[configuration]]\nname = 'x'\nvoters = []\n", "decider must be a policy table"),
        ("[[configuration]]\nname = 'x'\nvoters = []\nweight = 1\n", "exactly name, voters"),
        (
            "[[configuration]]\nname = 'x'\nvoters = ['oracle']\ndecider = {kind='all'}\n",
            "voters must be a list",
        ),
        (
            "[[configuration]]\nname = 'x'\nvoters = ['rule', 'rule']\n"
            "decider = {kind='on_by_default'}\n",
            "listed twice",
        ),
        (
            "[[configuration]]\nname = 'x'\nvoters = []\ndecider = {kind='sometimes'}\n",
            "(x)",
        ),
        (
            "[[configuration]]\nname = 'x'\nvoters = ['rule']\ndecider = {kind='on_by_default'}\n",
            'rules = "FILE"',
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=r"voters\.toml") as caught:
        load_configurations(write(tmp_path, body))
    assert problem in str(caught.value)


def test_unknown_names_in_only_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    one = "[[configuration]]\nname = 'x'\nvoters = []\ndecider = {kind='on_by_default'}\n"
    with pytest.raises(ConfigurationError, match="no configuration named y"):
        load_configurations(write(tmp_path, one), only=("y",))
    with pytest.raises(ConfigurationError, match="unique"):
        load_configurations(write(tmp_path, one + one))


def test_a_broken_rule_file_is_refused(tmp_path: Path) -> None:
    body = "rules = 'rules.toml'\n[[configuration]]\nname = 'x'\nvoters = ['rule']\n"
    body += "decider = {kind='on_by_default'}\n"
    with pytest.raises(ConfigurationError, match="rules"):
        load_configurations(write(tmp_path, body, rules="default = 'maybe'\n"))
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_configurations(tmp_path / "missing.toml")


@pytest.mark.parametrize("suite", ["workspace", "travel", "banking", "slack"])
def test_each_suites_labels_name_every_tool_once(suite: str) -> None:
    """Every tool is read-only or a sink with critical arguments it really takes; nothing is
    left to the unknown-tool default by accident."""
    from agentdojo.task_suite.load_suites import get_suite

    loaded = load_configurations(ROOT / "config" / "agentdojo-voters.toml")
    labels = loaded.labels_for(suite)
    tools = {f.name: f for f in get_suite("v1.2.2", suite).tools}
    assert labels.read_only | set(labels.sinks) == set(tools)
    for name, sink in labels.sinks.items():
        arguments = set(tools[name].parameters.model_json_schema().get("properties", {}))
        assert set(sink.critical) | set(sink.free_text) <= arguments, name
    assert labels.user_ids


def test_an_ifc_configuration_needs_labels(tmp_path: Path) -> None:
    text = (
        '[[configuration]]\nname = "f"\nvoters = ["ifc"]\n'
        'decider = { kind = "veto", params = { kinds = ["ifc"] } }\n'
    )
    with pytest.raises(ConfigurationError, match="labels"):
        load_configurations(write(tmp_path, text, rules=None))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "bank.toml").write_text('read_only = ["r"]\n')
    loaded = load_configurations(write(tmp_path, 'labels = "labels"\n' + text, rules=None))
    assert loaded.labels_for("bank").read_only == {"r"} and loaded.configurations[0].escalates
    with pytest.raises(ConfigurationError, match="no ifc labels for 'shop'"):
        loaded.labels_for("shop")


def test_the_example_labels_load() -> None:
    from logact.agent.judgement.ifc import load_labels

    labels = load_labels(ROOT / "config" / "labels.example.toml")
    assert labels.sink("read_file") is None and labels.sink("shell") is not None
