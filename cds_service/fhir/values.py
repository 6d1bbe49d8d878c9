"""Tolerant readers for FHIR JSON primitives and datatypes, shared by the snapshot builder and order parsing.

They never raise on odd input: a value that cannot be read becomes None, and the caller decides whether that
makes the record unusable. "Cannot be read" includes values outside what any clinical record holds: dates before
1800 or after 2999 (``9999-12-31``, an EHR's "no end" sentinel, reads as no date) and numbers whose magnitude is
10^13 or more, or under 10^-12. Letting those through would make the date arithmetic and number formatting downstream
overflow or run for minutes (``Decimal("1e999999999")`` formatted without exponent is a billion characters).

``json_shape_problem`` is the cheap structural check applied to every JSON document the service parses (request
bodies and fetched FHIR pages) before anything recursive sees it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from cds_service.domain import Coding, Concept

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")

MIN_YEAR, MAX_YEAR = 1800, 2999
MAX_EXPONENT = 12  # numbers are read when 10^-12 <= |x| < 10^13 (decimal exponent of the leading digit)
_DIGITS = Context(prec=18)  # FHIR decimals carry at most 18 significant digits
MAX_DURATION_DAYS = Decimal(36525)  # a supply or period over 100 years is not a duration anyone ordered


def json_shape_problem(value: Any, *, max_depth: int, max_items: int) -> str | None:
    """Why a parsed JSON document is too deep or holds too long an array, or None when it is within both limits.

    Breadth-first, one level at a time (no recursion, whatever the depth), touching each container once: about
    25 ms per MB of the densest FHIR JSON, 1 ms for a typical hook request. ``max_depth`` counts nested objects
    and arrays (the top-level object is depth 1).
    """
    level: list[Any] = [value]
    depth = 1
    while level:
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        below: list[Any] = []
        add = below.append
        for node in level:
            if type(node) is dict:
                children: Any = node.values()
            elif type(node) is list:
                if len(node) > max_items:
                    return f"an array holds {len(node)} items, over the limit of {max_items}"
                children = node
            else:
                continue
            for child in children:
                kind = type(child)
                if kind is dict or kind is list:
                    add(child)
        level = below
        depth += 1
    return None


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
    if len(value) > 64:  # the longest FHIR instant is 35 characters; do not hand fromisoformat a novel
        return None
    m = _PARTIAL_DATE.match(value)
    if m:
        try:
            dt = datetime(int(m[1]), int(m[2] or 1), int(m[3] or 1), tzinfo=UTC)
        except ValueError:
            return None
    else:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    dt = parse_datetime(value)
    return dt.date() if dt else None


def parse_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and len(value) > 64:
        return None
    if isinstance(value, int | float | str):
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not d.is_finite():
            return None
        if d.is_zero():
            return Decimal(0)
        if not -MAX_EXPONENT <= d.adjusted() <= MAX_EXPONENT:  # no arithmetic: abs() of 1e999999999 overflows
            return None
        return _DIGITS.plus(d) if len(d.as_tuple().digits) > 18 else d
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
    """A Duration/Quantity in days (expectedSupplyDuration, daysSupply); None when the unit is not time.

    Negative durations and durations over 100 years are unreadable (None), not errors.
    """
    q = as_dict(quantity)
    value = parse_decimal(q.get("value"))
    if value is None:
        return None
    unit = (as_str(q.get("code")) or as_str(q.get("unit")) or "d").lower()
    factors: dict[str, Decimal | int] = {
        "d": 1, "day": 1, "days": 1,
        "wk": 7, "week": 7, "weeks": 7,
        "mo": Decimal("30.4375"), "month": Decimal("30.4375"), "months": Decimal("30.4375"),
        "a": Decimal("365.25"), "year": Decimal("365.25"), "years": Decimal("365.25"),
        "h": Decimal(1) / 24, "hour": Decimal(1) / 24, "hours": Decimal(1) / 24,
    }  # fmt: skip
    factor = factors.get(unit)
    if factor is None:
        return None
    days = value * factor
    return days if 0 <= days <= MAX_DURATION_DAYS else None
