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
) -> RunRecord:
    return RunRecord(
        suite, configuration, "u", injection, "bus", utility, succeeded, succeeded, calls
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


def test_the_table_has_a_row_per_configuration_and_a_section_per_suite() -> None:
    runs = [
        run(None, True, None, configuration="no voter", suite="banking"),
        run(None, True, None, configuration="provenance", suite="slack"),
    ]
    text = markdown(summaries(runs), title="T")
    assert text.startswith("# T")
    assert "## banking" in text and "## slack" in text and "## all" in text
    assert text.count("| no voter |") == 2 and text.count("| provenance |") == 2


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
