"""Click options shared by the bench commands that write one results file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def results_options(default_out: str) -> Callable[[Any], Any]:
    """``--out FILE`` (the results, JSON) and ``--json`` (the same document on stdout)."""

    def decorate(func: Any) -> Any:
        func = click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Output for programs: the results (as written to --out) as one object, "
            "instead of text.",
        )(func)
        return click.option(
            "--out",
            type=click.Path(dir_okay=False),
            default=default_out,
            show_default=True,
            help="Where to write the results (JSON).",
        )(func)

    return decorate
