"""Latency summaries and ratios.

Percentiles use the nearest-rank method on the raw samples (no interpolation, no histogram
buckets) so p99 of a small run is an observed value, not an estimate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in [0, 100])."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_us(latencies_us: Sequence[float]) -> dict[str, Any]:
    """p50/p99/mean/max in milliseconds from microsecond samples."""
    values = sorted(latencies_us)
    if not values:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    return {
        "samples": len(values),
        "p50_ms": round(percentile(values, 50) / 1000, 3),
        "p99_ms": round(percentile(values, 99) / 1000, 3),
        "mean_ms": round(sum(values) / len(values) / 1000, 3),
        "max_ms": round(values[-1] / 1000, 3),
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either side is missing or zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 2)


def summarize_s(seconds: Sequence[float | None]) -> dict[str, Any]:
    """p50/max in seconds of a few timed events (a failover, a restart); None samples (the event
    never happened within its bound) are counted as ``missed``, never averaged in."""
    values = sorted(v for v in seconds if v is not None)
    return {
        "samples": len(values),
        "missed": sum(1 for v in seconds if v is None),
        "p50_s": round(percentile(values, 50), 3) if values else None,
        "max_s": round(values[-1], 3) if values else None,
    }


def median_tree(values: list[Any]) -> Any:
    """Per-leaf median of several rounds' result trees; lists (samples) are pooled over the
    rounds; strings and other leaves come from the first round."""
    first = values[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for v in values if isinstance(v, dict) for k in v))
        return {
            k: median_tree([v[k] for v in values if isinstance(v, dict) and k in v]) for k in keys
        }
    if isinstance(first, list):
        return [item for v in values if isinstance(v, list) for item in v]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(values):
        return round(statistics.median(numbers), 3)
    return first
