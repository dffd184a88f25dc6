"""Values in the text an agent read: identifiers, numbers and records (shared by the voters that
trace where an action's values came from: agent/judgement/provenance.py and
agent/judgement/ifc.py)."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

_URL = r"(?:https?://)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?::\d+)?(?:/[^\s'\"<>)]*)?"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_CODE = r"(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{8,}|\d{6,}"  # account-like: IBANs, ids
#: An identifier-shaped token: an e-mail address, a URL or an account-like code.
IDENTIFIER = re.compile(rf"(?<![\w@.-])(?:{_EMAIL}|{_URL}|{_CODE})(?![\w@-])", re.IGNORECASE)

_FIELD_NAME = re.compile(r"[^\s:]{1,64}")
#: Deepest record structure read as records; deeper output is prose (and no recursion limit).
MAX_RECORD_DEPTH = 32


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a tool output someone else wrote must not expand into a bomb."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not followed in tool output")
        return super().compose_node(parent, index)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)


def as_number(text: str) -> Decimal | None:
    """The number ``text`` writes ("30,000" is 30000), or None."""
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _record_like(parsed: Any, depth: int = 0) -> bool:
    """Parsed structure whose keys are all field names (prose with a colon parses as YAML too),
    nested at most ``MAX_RECORD_DEPTH`` deep."""
    if depth > MAX_RECORD_DEPTH:
        return False
    if isinstance(parsed, dict):
        return all(
            isinstance(k, str) and _FIELD_NAME.fullmatch(k) and _record_like(v, depth + 1)
            for k, v in parsed.items()
        )
    if isinstance(parsed, list):
        return all(_record_like(item, depth + 1) for item in parsed)
    return True


def parse_records(text: str) -> dict[str, Any] | list[Any] | None:
    """A tool output as parsed JSON or YAML records, or None when it is prose, too deep, or
    YAML with aliases (which could expand without bound)."""
    stripped = text.strip()
    if not stripped or (stripped[:1] not in "[{" and ":" not in stripped.partition("\n")[0]):
        return None
    for parse in (json.loads, _yaml):
        try:
            parsed = parse(stripped)
        except (ValueError, yaml.YAMLError, RecursionError):
            continue
        if isinstance(parsed, dict | list) and _record_like(parsed):
            return parsed
        return None
    return None
