"""Differential check of the validation fast path against fhir.resources (``cds_service.fhir.r4b``).

    .venv/bin/python -m bench.validator_check            # 20,000 mutated resources, ~1 minute
    .venv/bin/python -m bench.validator_check -n 2000    # quicker

The fast path may only ever say "certainly valid" when fhir.resources accepts the same (projected) resource; when it
is unsure, fhir.resources decides. This takes every resource of the benchmark chart, projects it as the FHIR door
does, mutates it at random (wrong types, empty and whitespace strings, impossible dates, leap seconds, time zones,
out-of-range numbers, unknown and duplicated choice elements, extensions, nulls, lists for objects and back...) and
checks that claim on each. It also checks that ``validate`` accepts exactly what fhir.resources accepts.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from pathlib import Path
from typing import Any

from bench import workloads
from cds_service.fhir import r4b
from cds_service.fhir.snapshot import READ_ELEMENTS

ROOT = Path(__file__).resolve().parent.parent
ODD_VALUES: list[Any] = [
    "",
    " ",
    " x",
    "x ",
    "a  b",
    "a\tb",
    "final",
    "x" * 70,
    "Foo/1",
    "http://x y",
    "a_b",
    "ü",
    "\x0b",  # whitespace other than space, tab, CR, LF: fhir.resources refuses a string made only of it
    "\x0bA",
    "\xa0",
    "\x1c",
    "\u2028",
    "a\u2028b",
    "\x0c x",
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    10**20,
    1.5,
    -0.0,
    1e17,
    1e300,
    5.0,
    True,
    False,
    None,
    "1.0",
    "1",
    "true",
    "2026",
    "2026-02",
    "2026-02-28",
    "2026-02-29",
    "2024-02-29",
    "2026-02-30",
    "2026-13",
    "0000-01-01",
    "0999-01-01",
    "2026-01-01T10:00:00Z",
    "2026-01-01T10:00:00",
    "2026-01-01T10:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T10:00:00.123456Z",
    "2026-01-01T10:00:00.1234567Z",
    "2016-12-31T23:59:60Z",
    "2026-01-01T10:00:00+14:00",
    "2026-01-01T10:00:00+14:30",
    "2026-01-01T10:00:00-13:59",
    "2026-01-01T10:00:00+15:00",
    "2026-01-01 10:00:00Z",
    "2026-1-1",
    [],
    {},
    [None],
    [1],
    ["x"],
    {"text": "x"},
    {"x": 1},
    {"coding": []},
    {"coding": [{}]},
    [{"text": "x"}],
    {"value": 1},
    {"reference": "Patient/1"},
    '{"text": "x"}',
]
ODD_KEYS = [
    "foo",
    "_status",
    "_value",
    "extension",
    "modifierExtension",
    "fhir_comments",
    "resourceType",
    "id",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "effectiveInstant",
    "medicationReference",
    "onsetString",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(res: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    res = copy.deepcopy(res)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = [p for p in _paths(res) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent: Any = res
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = rng.random()
        if action < 0.55:
            parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif action < 0.7 and isinstance(parent, dict):
            del parent[last]
        elif action < 0.85 and isinstance(parent, dict):
            parent[rng.choice(ODD_KEYS)] = copy.deepcopy(rng.choice([*ODD_VALUES, parent[last]]))
        elif isinstance(parent[last], list) and parent[last]:
            parent[last] = parent[last][0]  # a single object where an array belongs
        else:
            parent[last] = [parent[last]]  # an array where a single value belongs
    return res


def _resources(value: Any) -> list[dict[str, Any]]:
    """Every object with a resourceType inside ``value`` (Bundles, prefetch maps, draft orders, contained)."""
    out = []
    if isinstance(value, dict):
        if isinstance(value.get("resourceType"), str) and value["resourceType"] != "Bundle":
            out.append(value)
        for v in value.values():
            out += _resources(v)
    elif isinstance(value, list):
        for v in value:
            out += _resources(v)
    return out


def _corpus() -> list[dict[str, Any]]:
    """The benchmark chart, plus every resource in the golden hook requests (other shapes, other EHRs)."""
    found = _resources(workloads.prefetch(300))
    for path in sorted((ROOT / "fixtures").rglob("*.json")):
        try:
            found += _resources(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def _fhir_resources_accepts(res: dict[str, Any]) -> bool:
    try:
        r4b._model(res["resourceType"]).model_validate(res)
    except Exception:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="mutated resources to check")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - reproducible fuzzing, not security
    originals = [r for r in _corpus() if r.get("resourceType") in READ_ELEMENTS]
    fast_accepts = wrong = mismatched = 0
    for i in range(args.n):
        res = _mutate(rng.choice(originals), rng) if i >= len(originals) else originals[i]
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or rtype not in READ_ELEMENTS:
            continue
        model = r4b._model(rtype)
        plan = r4b._plan(model, READ_ELEMENTS[rtype])
        projected = r4b._project(res, plan)
        truth = _fhir_resources_accepts(projected)
        try:
            fast = r4b._read_valid(res, r4b._table(model), plan)  # what validate() runs first
            fast_projected = r4b._certainly_valid(projected, r4b._table(model), top=True)
        except RecursionError:
            fast = fast_projected = False
        fast_accepts += fast
        if (fast or fast_projected) and not truth:
            wrong += 1
            print(f"FAST PATH WRONG: {projected}", file=sys.stderr)
        try:
            r4b.validate(res, READ_ELEMENTS[rtype])
            verdict = True
        except r4b.InvalidResource:
            verdict = False
        if verdict != truth:
            mismatched += 1
            print(f"VERDICT DIFFERS ({verdict} vs {truth}): {projected}", file=sys.stderr)
    print(
        f"{args.n} resources ({len(originals)} unmutated): fast path accepted {fast_accepts}, "
        f"wrongly {wrong}; validate() disagreed with fhir.resources on {mismatched}"
    )
    return 1 if wrong or mismatched else 0


if __name__ == "__main__":
    raise SystemExit(main())
