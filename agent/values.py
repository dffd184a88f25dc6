"""Values in the text an agent read: identifiers, numbers and records (shared by the voters that
trace where an action's values came from: agent/provenance.py and agent/ifc.py)."""

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


def as_number(text: str) -> Decimal | None:
    """The number ``text`` writes ("30,000" is 30000), or None."""
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _record_like(parsed: Any) -> bool:
    """Parsed structure whose keys are all field names: prose with a colon parses as YAML too."""
    if isinstance(parsed, dict):
        return all(
            isinstance(k, str) and _FIELD_NAME.fullmatch(k) and _record_like(v)
            for k, v in parsed.items()
        )
    if isinstance(parsed, list):
        return all(_record_like(item) for item in parsed)
    return True


def parse_records(text: str) -> dict[str, Any] | list[Any] | None:
    """A tool output as parsed JSON or YAML records, or None when it is prose."""
    stripped = text.strip()
    if not stripped or (stripped[:1] not in "[{" and ":" not in stripped.partition("\n")[0]):
        return None
    for parse in (json.loads, yaml.safe_load):
        try:
            parsed = parse(stripped)
        except (ValueError, yaml.YAMLError):
            continue
        if isinstance(parsed, dict | list) and _record_like(parsed):
            return parsed
        return None
    return None
