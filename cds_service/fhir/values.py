"""Tolerant readers for FHIR JSON primitives and datatypes, shared by the snapshot builder and order parsing.

They never raise on odd input: a value that cannot be read becomes None, and the caller decides whether that
makes the record unusable.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.domain import Coding, Concept

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]  # a single object where an array belongs (e.g. ``category``): tolerate it


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def parse_datetime(value: Any) -> datetime | None:
    """FHIR date or dateTime -> aware datetime (partial dates become the first instant; naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    m = _PARTIAL_DATE.match(value)
    if m:
        try:
            return datetime(int(m[1]), int(m[2] or 1), int(m[3] or 1), tzinfo=UTC)
        except ValueError:
            return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    dt = parse_datetime(value)
    return dt.date() if dt else None


def parse_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            return None
        return d if d.is_finite() else None
    return None


def concept(value: Any) -> Concept:
    cc = as_dict(value)
    codings = tuple(
        Coding(as_str(c.get("system")), as_str(c.get("code")), as_str(c.get("display")))
        for c in as_list(cc.get("coding"))
        if isinstance(c, dict)
    )
    return Concept(codings=codings, text=as_str(cc.get("text")))


def first_code(value: Any) -> str | None:
    """The first code of a CodeableConcept (e.g. clinicalStatus), lower-cased for comparison."""
    for c in concept(value).codings:
        if c.code:
            return c.code.lower()
    return None


def reference(resource: dict[str, Any]) -> str:
    rtype = as_str(resource.get("resourceType")) or "Resource"
    rid = as_str(resource.get("id"))
    return f"{rtype}/{rid}" if rid else rtype


def period_days(quantity: Any) -> Decimal | None:
    """A Duration/Quantity in days (expectedSupplyDuration, daysSupply); None when the unit is not time."""
    q = as_dict(quantity)
    value = parse_decimal(q.get("value"))
    if value is None:
        return None
    unit = (as_str(q.get("code")) or as_str(q.get("unit")) or "d").lower()
    factor = {
        "d": 1, "day": 1, "days": 1,
        "wk": 7, "week": 7, "weeks": 7,
        "mo": Decimal("30.4375"), "month": Decimal("30.4375"), "months": Decimal("30.4375"),
        "a": Decimal("365.25"), "year": Decimal("365.25"), "years": Decimal("365.25"),
        "h": Decimal(1) / 24, "hour": Decimal(1) / 24, "hours": Decimal(1) / 24,
    }.get(unit)  # fmt: skip
    return value * factor if factor is not None else None
