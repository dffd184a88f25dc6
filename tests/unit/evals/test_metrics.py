"""The evaluation's figures (evals/metrics.py) from hand-made and generated run records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from logact.evals.metrics import CallRecord, RunRecord, markdown, summaries, summarise, writers


def call(function: str, label: str, approved: bool, side_effect: bool = False) -> CallRecord:
    return CallRecord(function, label, side_effect, approved, "r", 2.0, 1)


def run(
    injection: str | None,
    utility: bool,
    succeeded: bool | None,
    *calls: CallRecord,
    configuration: str = "c",
    suite: str = "s",
    attack: str | None = None,
    person: str = "none",
    goal_step: int | None = None,
    planted_step: int | None = None,
) -> RunRecord:
    return RunRecord(
        suite,
        configuration,
        "u",
        injection,
        "bus",
        utility,
        succeeded,
        succeeded,
        calls,
        attack=attack if attack or injection is None else "a",
        person=person,
        goal_step=goal_step,
        planted_step=planted_step,
    )


def test_rates_count_the_right_runs_and_calls() -> None:
    runs = [
        run(None, True, None, call("read", "user", True), call("pay", "user", False, True)),
        run(None, False, None, call("read", "user", True)),
        run("i", True, False, call("pay", "injection", False), call("read", "injection", True)),
        run("i", False, True, call("pay", "injection", True), call("pay", "user", True)),
    ]
    s = summarise(runs, writers(runs))
    assert (s.benign_runs, s.attacked_runs) == (2, 2)
    assert s.benign_utility == 0.5 and s.utility_under_attack == 0.5 and s.attack_success == 0.5
    assert s.user_calls == 3 and s.false_positive_rate == 1 / 3
    # "pay" changed the environment once, so every injected "pay" counts as harmful
    assert s.injected_side_effect_calls == 2 and s.false_negative_rate == 0.5
    assert s.injected_read_calls == 1 and s.read_calls_approved == 1.0
    assert s.decision_ms_p50 == 2.0


def test_no_runs_of_a_kind_give_no_rate_rather_than_zero() -> None:
    s = summarise([run(None, True, None)], frozenset())
    assert s.attack_success is None and s.false_negative_rate is None
    assert s.false_positive_rate is None and s.decision_ms_p50 is None


def test_the_report_has_benign_rows_per_configuration_and_suite_and_attack_rows() -> None:
    runs = [
        run(None, True, None, configuration="no voter", suite="banking"),
        run(None, True, None, configuration="ifc", suite="banking"),
        run("i", True, True, configuration="no voter", suite="banking", attack="a1"),
        run("i", True, False, configuration="ifc", suite="banking", attack="a1"),
        run("i", True, True, configuration="ifc", suite="banking", attack="a2"),
    ]
    table = summaries(runs)
    assert list(table) == ["a1", "a2"]
    assert table["a1"]["ifc"]["banking"].attack_success == 0.0
    assert table["a2"]["ifc"]["banking"].attack_success == 1.0
    assert table["a2"]["ifc"]["banking"].benign_runs == 1  # benign runs count for every attack
    text = markdown(table, title="T")
    assert text.startswith("# T") and "## Benign tasks" in text and "## Attack success" in text
    assert "| ifc | banking | 100.0% of 1 |" in text
    assert "| a1 | ifc | 0.0% | 0.0% |" in text and "| a2 | ifc | 100.0% | 100.0% |" in text


def test_escalations_and_a_persons_approvals_are_counted_apart() -> None:
    escalated = CallRecord("pay", "user", True, False, "asked", 2.0, 1, escalated=True)
    runs = [
        run(None, False, None, escalated),
        run(None, True, None, call("read", "user", True)),
        run(None, True, None, escalated, person="approves"),
    ]
    s = summarise(runs, writers(runs))
    assert s.benign_runs == 2 and s.runs == 3
    assert s.benign_utility == 0.5 and s.benign_escalated == 0.5
    assert s.utility_with_approvals == 1.0


def test_the_oracles_triggers_agree_when_they_fire_at_the_same_result() -> None:
    runs = [
        run("i", True, True, goal_step=2, planted_step=2),
        run("i", True, True, goal_step=2, planted_step=3),
        run("i", True, True, goal_step=None, planted_step=1),
    ]
    assert summarise(runs, frozenset()).triggers_agree == 0.5


records = st.builds(
    run,
    st.none() | st.just("i"),
    st.booleans(),
    st.none() | st.booleans(),
    *[
        st.builds(
            call,
            st.sampled_from(["a", "b"]),
            st.sampled_from(["user", "injection"]),
            st.booleans(),
            st.booleans(),
        )
    ]
    * 3,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=30))
def test_every_rate_is_a_fraction_and_counts_add_up(runs: list[RunRecord]) -> None:
    s = summarise(runs, writers(runs))
    assert s.runs == s.benign_runs + s.attacked_runs == len(runs)
    for rate in (
        s.benign_utility,
        s.utility_under_attack,
        s.attack_success,
        s.false_positive_rate,
        s.false_negative_rate,
        s.read_calls_approved,
    ):
        assert rate is None or 0 <= rate <= 1
    injected = sum(c.label == "injection" for r in runs if r.injection_task for c in r.calls)
    assert s.injected_side_effect_calls + s.injected_read_calls == injected


def test_attack_success_is_split_by_whether_the_attacker_chose_a_value() -> None:
    chosen = RunRecord(
        "s", "c", "u", "i1", "b", True, False, False, attack="a", attacker_value=True
    )
    unchosen = RunRecord("s", "c", "u", "i2", "b", True, True, True, attack="a")
    s = summarise([chosen, unchosen], frozenset())
    assert (s.attack_success, s.attack_success_chosen, s.attack_success_unchosen) == (0.5, 0, 1)
    assert "| 50.0% | 0.0% / 100.0% |" in markdown(summaries([chosen, unchosen]), title="T")
