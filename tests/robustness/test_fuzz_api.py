"""Property-based fuzzing of every endpoint with hypothesis: no 5xx, every 4xx an OperationOutcome, nothing empty.

Four generators, from blind to structured:

* arbitrary bytes and arbitrary JSON sent to every endpoint;
* a valid hook request with one field somewhere replaced, deleted, nested deeply, nulled or emptied;
* FHIR-ish resources (real resource types and codes the rules react to, mixed with wrong types, unknown
  resourceTypes, extreme numbers, odd dates, unicode) in every prefetch key, in ``draftOrders`` and in the
  pages a FHIR server answers the fallback fetch with (an httpx MockTransport serving generated content);
* the "nothing silent" property: junk next to a real active opioid order never hides it.

Every answer goes through ``tests.robustness.check_response``: status < 500; a 4xx carries an OperationOutcome;
a 200 hook answer has well-formed cards (summary < 140 characters) with no ``null``/empty field anywhere.
Bounded: about 15 s in all on a 2-core machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cds_service.app import create_app
from cds_service.hooks.services import PREFETCH
from tests.builders import (
    ICD10,
    LOINC,
    NALTREXONE_50,
    NOW,
    OXYCODONE_5,
    RXNORM,
    SNOMED,
    VIVITROL,
    hook_request,
    medication_request,
    naltrexone_draft,
    observation,
)
from tests.robustness import PRESCRIBE, SELECT, SIGN, check_response, rule_ids

FHIR = "http://127.0.0.1:9/fhir"  # served by the MockTransport below, never by the network
ENDPOINTS = (SIGN, SELECT, PRESCRIBE, f"{SIGN}/feedback", "/cds-services/unknown", "/cds-services/unknown/feedback")
# ROBUSTNESS_EXAMPLES=2000 for a long exploratory run; the default keeps the suite bounded.
EXAMPLES = int(os.environ.get("ROBUSTNESS_EXAMPLES", "80"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # No shrinking: a failure is reported with the example as generated, at once; shrinking these nested
    # documents can take minutes, and the suite must stay bounded.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Served:
    """What the fake FHIR server answers with; set per example."""

    status = 200
    content_type: str | None = "application/fhir+json"
    body = b'{"resourceType": "Bundle", "type": "searchset"}'


def _serve(request: httpx.Request) -> httpx.Response:
    headers = {"content-type": Served.content_type} if Served.content_type else {}
    return httpx.Response(Served.status, content=Served.body, headers=headers)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    from tests.robustness import robust_settings

    http = httpx.AsyncClient(transport=httpx.MockTransport(_serve))
    app = create_app(robust_settings(fhir={"timeout_s": 2.0}), clock=lambda: NOW, http=http)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _post(client: TestClient, path: str, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=raw, headers={"Content-Type": "application/json"})


# ------------------------------------------------------------------------------------------------- strategies

EXTREME_NUMBERS = (
    0, -0.0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
    1e308, -1e308, 5e-324, 1e-30, 1.5, 0.1, 1e15, 1e12, 36525, 36526,
)  # fmt: skip
ODD_STRINGS = (
    "", " ", "\u0000", "\ufeff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "نالتريكسون", "ナルトレキソン", "a" * 300, "1e999999999", "-1e-999999999",
    "NaN", "Infinity", "12", "0x1F", "1_000", "{{context.patientId}}", "../../etc/passwd", "<script>", "%00",
)  # fmt: skip
DATES = (
    "2026-11-20", "2026-11", "2026", "2026-13-01", "2026-02-30", "9999-12-31", "0001-01-01", "1799-12-31",
    "2026-11-20T10:00:00Z", "2026-11-20T10:00:00+14:00", "2026-11-20T10:00:00-12:00", "2026-11-20T25:00:00Z",
    "20261120", "2026-W47", "yesterday", "2026-11-20T10:00:00.123456789Z",
)  # fmt: skip
RESOURCE_TYPES = (
    "MedicationRequest", "MedicationStatement", "MedicationDispense", "Medication", "Observation", "Condition",
    "AllergyIntolerance", "Patient", "OperationOutcome", "Bundle", "MedicationOrder", "ServiceRequest",
    "NotAResource", "medicationrequest", "",
)  # fmt: skip
CODES = (
    (RXNORM, OXYCODONE_5[0]), (RXNORM, NALTREXONE_50[0]), (RXNORM, VIVITROL[0]), (RXNORM, "1551468"),
    (RXNORM, "6813"), (RXNORM, "1819"), (RXNORM, "7243"), (RXNORM, "1310197"), (RXNORM, "73032"),
    (LOINC, "1742-6"), (LOINC, "1920-8"), (LOINC, "19295-5"), (LOINC, "82810-3"), (LOINC, "98979-8"),
    (LOINC, "63895-7"), (LOINC, "2106-3"), (ICD10, "F11.23"), (ICD10, "K70.30"), (ICD10, "N18.4"),
    (ICD10, "Z39.1"), (SNOMED, "87132004"), (SNOMED, "77386006"), (SNOMED, "36923009"), ("urn:local", "X1"),
)  # fmt: skip

text = st.text(max_size=40) | st.sampled_from(ODD_STRINGS)
numbers = (
    st.sampled_from(EXTREME_NUMBERS)
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)
scalars = st.none() | st.booleans() | numbers | text
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the well-typed value, sometimes anything at all (wrong types are part of the input space)."""
    return st.one_of(strategy, strategy, strategy, json_values)


dates = _maybe(st.sampled_from(DATES) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()))
coding = st.builds(
    lambda sc, display: {"system": sc[0], "code": sc[1], **({"display": display} if display else {})},
    st.sampled_from(CODES),
    st.none() | text,
)
concept = _maybe(
    st.fixed_dictionaries({}, optional={"coding": _maybe(st.lists(coding, max_size=3)), "text": _maybe(text)})
)
quantity = _maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "value": _maybe(numbers | st.sampled_from(ODD_STRINGS)),
            "unit": _maybe(st.sampled_from(["mg", "U/L", "d", "days", "wk", "mo", "a", "h", "tab", "mL/min", ""])),
            "code": _maybe(st.sampled_from(["mg", "U/L", "d", "wk", "a", "h", "{tbl}"])),
        },
    )
)
period = _maybe(st.fixed_dictionaries({}, optional={"start": dates, "end": dates}))
dosage = _maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "text": _maybe(text),
            "timing": _maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "repeat": _maybe(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "frequency": _maybe(numbers),
                                    "period": _maybe(numbers),
                                    "periodUnit": _maybe(st.sampled_from(["d", "wk", "mo", "h", "min", "s", "a"])),
                                    "boundsPeriod": period,
                                    "dayOfWeek": _maybe(st.lists(st.sampled_from(["mon", "wed", "fri"]))),
                                },
                            )
                        )
                    },
                )
            ),
            "doseAndRate": _maybe(st.lists(st.fixed_dictionaries({}, optional={"doseQuantity": quantity}), max_size=2)),
            "route": concept,
        },
    )
)
STATUSES = ("active", "on-hold", "completed", "stopped", "cancelled", "draft", "entered-in-error", "intended",
            "final", "amended", "preliminary", "unknown", "ACTIVE", "")  # fmt: skip

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": _maybe(text),
    "status": _maybe(st.sampled_from(STATUSES)),
    "intent": _maybe(st.sampled_from(["order", "plan", "proposal"])),
    "subject": _maybe(st.just({"reference": "Patient/pat-1"})),
    "medicationCodeableConcept": concept,
    "medicationReference": _maybe(st.fixed_dictionaries({}, optional={"reference": _maybe(text), "display": text})),
    "code": concept,
    "valueQuantity": quantity,
    "valueCodeableConcept": concept,
    "valueString": _maybe(text),
    "interpretation": _maybe(st.lists(concept, max_size=2)),
    "referenceRange": _maybe(
        st.lists(st.fixed_dictionaries({}, optional={"high": quantity, "low": quantity, "text": text}), max_size=2)
    ),
    "effectiveDateTime": dates,
    "effectivePeriod": period,
    "issued": dates,
    "authoredOn": dates,
    "dateAsserted": dates,
    "whenHandedOver": dates,
    "daysSupply": quantity,
    "dispenseRequest": _maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "validityPeriod": period,
                "expectedSupplyDuration": quantity,
                "numberOfRepeatsAllowed": _maybe(numbers),
            },
        )
    ),
    "dosageInstruction": _maybe(st.lists(dosage, max_size=2)),
    "clinicalStatus": concept,
    "verificationStatus": concept,
    "onsetDateTime": dates,
    "abatementDateTime": dates,
    "abatementString": _maybe(text),
    "recordedDate": dates,
    "criticality": _maybe(st.sampled_from(["high", "low", "unable-to-assess"])),
    "reaction": _maybe(
        st.lists(
            st.fixed_dictionaries({}, optional={"substance": concept, "manifestation": _maybe(st.lists(concept))}),
            max_size=2,
        )
    ),
    "meta": _maybe(st.fixed_dictionaries({}, optional={"lastUpdated": dates})),
    "gender": _maybe(st.sampled_from(["female", "male", "other", "unknown"])),
    "birthDate": dates,
    "extension": json_values,
    "unknownField": json_values,
}
resources = st.fixed_dictionaries(
    {"resourceType": _maybe(st.sampled_from(RESOURCE_TYPES))},
    optional=FIELDS,  # type: ignore[arg-type]  # hypothesis types optional= as a Mapping of one strategy type
)
resource_with_contained = st.builds(
    lambda res, contained: {**res, "contained": contained} if contained else res,
    resources,
    st.none() | st.lists(resources, max_size=2),
)
entries = st.lists(
    st.one_of(
        st.builds(lambda r: {"resource": r}, resource_with_contained),
        st.builds(lambda r: {"resource": r}, resource_with_contained),
        json_values,
    ),
    max_size=4,
)
next_links = st.sampled_from(
    [
        None,
        f"{FHIR}/Condition?page=2",
        "?page=2",
        "http://evil.example/fhir/x",
        "",
        "not a url",
        f"{FHIR}/%2e%2e/x",
        "http://[::1",
        "http://[abc]/x",
        "//[",
        "http://127.0.0.1:99999999/fhir/x",
        f"{FHIR}/Condition?page=2#\u00e9",
    ]
)


def _bundle(entry: Any, next_url: str | None, type_: Any = "searchset") -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Bundle", "entry": entry}
    if type_ is not None:
        out["type"] = type_
    if next_url is not None:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


bundles = st.builds(_bundle, _maybe(entries), next_links, st.none() | st.just("searchset") | json_values)
prefetch_values = st.one_of(
    st.none(),
    bundles,
    bundles,
    resource_with_contained,
    st.just({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}),
)
prefetches = st.fixed_dictionaries({}, optional={pk.key: prefetch_values for pk in PREFETCH})
# Prefetch values of an acceptable shape (a resource with a string resourceType, a Bundle or null; anything else
# is rightly a 400), with anything at all inside them.
typed_resources = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(RESOURCE_TYPES)},
    optional=FIELDS,  # type: ignore[arg-type]
)
shaped_prefetches = st.fixed_dictionaries(
    {}, optional={pk.key: st.one_of(st.none(), bundles, typed_resources) for pk in PREFETCH}
)


# -------------------------------------------------------------------------------------------------- the tests


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), body=st.binary(max_size=200) | st.sampled_from([b"", b"null", b"{}", b"[]"]))
def test_arbitrary_bytes(client: TestClient, path: str, body: bytes) -> None:
    check_response(_post(client, path, body))


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), body=json_values)
def test_arbitrary_json(client: TestClient, path: str, body: Any) -> None:
    check_response(_post(client, path, body))


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*here, i))
    return out


def _nest(levels: int, leaf: Any) -> Any:
    for i in range(levels):
        leaf = [leaf] if i % 2 else {"x": leaf}
    return leaf


MUTATIONS = (
    "replace",
    "delete",
    "null",
    "empty-string",
    "empty-object",
    "empty-list",
    "wrap-in-list",
    "deep",
    "resource",
)


def _realistic_request(hook: str) -> dict[str, Any]:
    from tests.builders import prefetch_with

    prefetch = prefetch_with(
        medicationRequests=[medication_request(status="completed", authored=-60, supply_days=30)],
        liverTests=[observation("1742-6", "ALT", value=210, unit="U/L", high=40)],
        urineScreens=[observation("19295-5", "Opiates screen", value_code=("260385009", "Negative"))],
    )
    return hook_request(hook, prefetch=prefetch)


@FUZZ
@given(hook=st.sampled_from(["order-sign", "order-select", "medication-prescribe"]), data=st.data())
def test_a_valid_request_with_one_field_mutated(client: TestClient, hook: str, data: st.DataObject) -> None:
    body = _realistic_request(hook)
    paths = _paths(body)
    target = data.draw(st.sampled_from(paths[1:]), label="path")
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    parent = body
    for step in target[:-1]:
        parent = parent[step]
    last = target[-1]
    if mutation == "delete":
        del parent[last]
    else:
        parent[last] = {
            "replace": lambda: data.draw(json_values, label="value"),
            "null": lambda: None,
            "empty-string": lambda: "",
            "empty-object": lambda: {},
            "empty-list": lambda: [],
            "wrap-in-list": lambda: [parent[last]],
            "deep": lambda: _nest(data.draw(st.integers(1, 120), label="levels"), parent[last]),
            "resource": lambda: data.draw(resources, label="resource"),
        }[mutation]()
    path = {"order-sign": SIGN, "order-select": SELECT, "medication-prescribe": PRESCRIBE}[hook]
    r = _post(client, path, body)
    check_response(r)
    if _depth(body) > 64:  # [limits] max_json_depth, default
        assert r.status_code == 400 and "nested deeper than 64 levels" in r.text, r.text


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@FUZZ
@given(
    prefetch=prefetches,
    drafts=st.lists(resource_with_contained, max_size=3),
    served=st.one_of(
        st.builds(lambda b: orjson.dumps(b), bundles),
        st.builds(lambda r: orjson.dumps(r), resource_with_contained),
        st.builds(lambda v: orjson.dumps(v), json_values),
        st.binary(max_size=60),
    ),
    status=st.sampled_from([200, 200, 200, 200, 302, 401, 404, 500]),
    content_type=st.sampled_from(["application/fhir+json", "application/json; charset=utf-8", "text/html", None]),
    hook=st.sampled_from(["order-sign", "order-select", "medication-prescribe"]),
)
def test_fhir_content_fuzzed_in_prefetch_drafts_and_fetched_pages(
    client: TestClient,
    prefetch: dict[str, Any],
    drafts: list[dict[str, Any]],
    served: bytes,
    status: int,
    content_type: str | None,
    hook: str,
) -> None:
    Served.body, Served.status, Served.content_type = served, status, content_type
    body = hook_request(hook, draft_orders=[naltrexone_draft(), *drafts], prefetch=prefetch, fhir_server=FHIR)
    path = {"order-sign": SIGN, "order-select": SELECT, "medication-prescribe": PRESCRIBE}[hook]
    check_response(_post(client, path, body))


@FUZZ
@given(
    junk=st.lists(resource_with_contained, min_size=1, max_size=6), where=st.integers(0, 6), others=shaped_prefetches
)
def test_junk_next_to_an_active_opioid_never_hides_it(
    client: TestClient, junk: list[dict[str, Any]], where: int, others: dict[str, Any]
) -> None:
    """Nothing silent: whatever else the record holds, an active oxycodone order still gives opioid-active."""
    Served.body, Served.status, Served.content_type = b"{}", 500, "application/fhir+json"
    medications = [*junk]
    medications.insert(min(where, len(medications)), medication_request(OXYCODONE_5, id="the-real-opioid"))
    prefetch = {**others, "medicationRequests": _bundle([{"resource": r} for r in medications], None)}
    r = _post(client, SIGN, hook_request(prefetch=prefetch, fhir_server=FHIR))
    body = check_response(r)
    assert r.status_code == 200, r.text
    assert "opioid-active" in rule_ids(body)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"hook": "order-sign", "hookInstance": "x", "context": {}, "n": ' + b"9" * 5000 + b"}",  # huge integer
        b'{"hook": "order-sign", "hookInstance": "x", "context": {}, "n": 1e400}',  # infinite float
        b'{"hook": "order-sign", "hookInstance": "\\ud800", "context": {}}',  # lone surrogate
        b'{"hook": "order-sign", "hookInstance": "x", "context": {}, "context": {"patientId": 1}}',  # duplicate key
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        b'{"a": "\xff\xfe"}',  # invalid UTF-8
        b"[" * 2000 + b"]" * 2000,  # deeper than orjson's own 1024 limit
    ],
    ids=["huge-int", "infinity", "lone-surrogate", "duplicate-key", "bom", "invalid-utf8", "orjson-depth"],
)
def test_json_edge_cases(client: TestClient, raw: bytes) -> None:
    for path in (SIGN, f"{SIGN}/feedback"):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        check_response(r)
        assert r.status_code in (200, 400), r.text  # 200: a duplicate key is read last-wins, like every parser


def test_discovery_has_no_empty_fields(client: TestClient) -> None:
    body = check_response(client.get("/cds-services"))
    assert len(body["services"]) == 3


# ------------------------------------------------------------------- extreme values inside otherwise valid data
# Deterministic cases for values hypothesis rarely combines with a resource valid enough to reach the rules.

FHIR_MAX_INT = 2**31 - 1


def _ext(draft: dict[str, Any] | None = None, **prefetch: Any) -> dict[str, Any]:
    from tests.builders import prefetch_with

    return hook_request(draft_orders=[draft or naltrexone_draft()], prefetch=prefetch_with(**prefetch))


EXTREMES: dict[str, dict[str, Any]] = {
    # the largest FHIR integer as refills of a finished opioid course: supply x (1 + refills) days
    "prefetched-refills-max-int": _ext(
        medicationRequests=[medication_request(status="completed", authored=-60, supply_days=30, refills=FHIR_MAX_INT)]
    ),
    "draft-refills-max-int": _ext(naltrexone_draft(refills=FHIR_MAX_INT)),
    "draft-frequency-max-int": _ext(naltrexone_draft(frequency=FHIR_MAX_INT)),
    "draft-dose-as-string-1e999999999": _ext(
        naltrexone_draft(
            dosageInstruction=[{"doseAndRate": [{"doseQuantity": {"value": "1e999999999", "unit": "mg"}}]}]
        )
    ),
    "draft-period-1e-300": _ext(naltrexone_draft(period=1e-300)),
    "alt-1e12-over-uln-1e-12": _ext(liverTests=[observation("1742-6", "ALT", value=1e12, unit="U/L", high=1e-12)]),
    "alt-uln-zero": _ext(liverTests=[observation("1742-6", "ALT", value=200, unit="U/L", high=0)]),
    "validity-end-9999-12-31": _ext(
        medicationRequests=[
            medication_request(validity_end=None, dispenseRequest={"validityPeriod": {"end": "9999-12-31"}})
        ]
    ),
    "authored-0001-01-01": _ext(medicationRequests=[medication_request(authored=None, authoredOn="0001-01-01")]),
    "dispense-days-supply-100-years": _ext(
        medicationDispenses=[
            {
                "resourceType": "MedicationDispense",
                "id": "disp-1",
                "status": "completed",
                "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": OXYCODONE_5[0]}]},
                "whenHandedOver": "2026-11-01",
                "daysSupply": {"value": 36525, "unit": "d"},
            }
        ]
    ),
    "draft-resource-type-is-a-list": _ext({**naltrexone_draft(id="other"), "resourceType": ["MedicationRequest"]}),
    "draft-resource-type-is-an-object": _ext({**naltrexone_draft(id="other"), "resourceType": {"x": 1}}),
}


@pytest.mark.parametrize("case", list(EXTREMES))
def test_extreme_values_in_valid_resources(client: TestClient, case: str) -> None:
    started = time.perf_counter()
    r = _post(client, SIGN, EXTREMES[case])
    check_response(r)
    assert r.status_code == 200, r.text
    assert time.perf_counter() - started < 2.0  # no runaway formatting of a huge number


# ------------------------------------------------------------------------ the tolerant readers never raise


@FUZZ
@given(value=json_values | st.sampled_from(ODD_STRINGS + DATES) | st.text(alphabet="0123456789eE+-.", max_size=30))
def test_tolerant_readers_never_raise(value: Any) -> None:
    from cds_service.fhir import values

    d = values.parse_decimal(value)
    assert d is None or (d.is_finite() and (d.is_zero() or -12 <= d.adjusted() <= 12))
    dt = values.parse_datetime(value)
    assert dt is None or (dt.tzinfo is not None and 1800 <= dt.year <= 2999)
    days = values.period_days({"value": value, "unit": "a"})
    assert days is None or 0 <= days <= 36525
    values.concept(value)
    values.first_code(value)
    values.as_list(value)


@FUZZ
@given(value=json_values, depth_limit=st.integers(1, 8), items_limit=st.integers(0, 5))
def test_json_shape_problem_matches_a_recursive_count(value: Any, depth_limit: int, items_limit: int) -> None:
    from cds_service.fhir.values import json_shape_problem

    def longest(v: Any) -> int:
        if isinstance(v, dict):
            return max((longest(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return max([len(v), *(longest(x) for x in v)])
        return 0

    problem = json_shape_problem(value, max_depth=depth_limit, max_items=items_limit)
    assert (problem is None) == (_depth(value) <= depth_limit and longest(value) <= items_limit), problem
