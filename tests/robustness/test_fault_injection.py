"""FHIR fault injection on the fallback fetch, against a real HTTP server on 127.0.0.1 (``FaultServer``).

Each case leaves one prefetch key out (``conditions``) so that the service must fetch it from a server that
misbehaves in one way, while the other keys are prefetched with an active oxycodone order. The contract:

* the answer is 200 (never 5xx, and not 412: a fhirServer was given; see docs/robustness.md for why a failed
  fetch is a data-unavailable card rather than a 412), with ONE data-unavailable card that names the category
  ("problem list and diagnoses") and the cause;
* the unaffected checks still run: opioid-active still fires from the prefetched medications;
* it arrives within ``fhir.timeout_s`` + a margin, whatever the server does (measured, not slept).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.fhir.resolve import FetchSettings, FhirFetcher, resolve
from cds_service.hooks.models import HookRequest
from tests.builders import NOW, PATIENT_ID, condition, empty_prefetch, hook_request, medication_request, prefetch_with
from tests.robustness import (
    SIGN,
    FaultServer,
    check_response,
    closed_port,
    robust_settings,
    rule_ids,
    unavailable_card,
)

TIMEOUT_S = 1.0
MARGIN_S = 1.0  # TestClient hop, thread hand-off, cancellation grace (0.25 s) and a busy CI machine
CONDITIONS = "problem list and diagnoses"  # Category.CONDITIONS.label, as the card shows it


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultServer]:
    hypertension = condition("I10", "Essential hypertension", id="htn-1")
    with FaultServer(entries=[hypertension]) as server:
        yield server


@pytest.fixture(scope="module")
def client(fhir: FaultServer) -> Iterator[TestClient]:
    app = create_app(robust_settings(fhir={"timeout_s": TIMEOUT_S}), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as c:
        _call_with_conditions_from(c, fhir.base("404"))  # warm-up: first-call costs stay out of the timings
        yield c


def _call_with_conditions_from(client: TestClient, fhir_server: str) -> tuple[dict[str, Any], float]:
    prefetch = prefetch_with(medicationRequests=[medication_request()])
    del prefetch["conditions"]
    body = hook_request(prefetch=prefetch, fhir_server=fhir_server, access_token="fault-token")
    started = time.perf_counter()
    r = client.post(SIGN, json=body)
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    return check_response(r), elapsed


# mode -> what the data-unavailable card must say about the conditions category
CASES: dict[str, tuple[str, bool]] = {
    "hang": (f"did not answer within {TIMEOUT_S:g} s", False),
    "401": ("HTTP 401 (the access token was refused)", False),
    "403": ("HTTP 403", False),
    "404": ("HTTP 404", False),
    "500": ("HTTP 500", False),
    "html": ("answered with text/html, not FHIR JSON", False),
    "invalid-json": ("not valid JSON", False),
    "outcome": ("answered with an OperationOutcome (processing)", False),
    "loop": ("pages link back to each other", True),
    "drip": (f"did not answer within {TIMEOUT_S:g} s", False),
    "huge": ("over the 33554432 byte limit", False),
    "redirect": ("HTTP 302 (a redirect; redirects are not followed)", False),
    "offhost": ("a next link points outside fhirServer", True),
}


@pytest.mark.parametrize("mode", list(CASES))
def test_fault_gives_a_data_unavailable_card_in_bounded_time(client: TestClient, fhir: FaultServer, mode: str) -> None:
    says, partial = CASES[mode]
    body, elapsed = _call_with_conditions_from(client, fhir.base(mode))
    print(f"fault {mode}: {elapsed:.3f} s")
    assert elapsed < TIMEOUT_S + MARGIN_S, f"{mode} took {elapsed:.2f} s"
    ids = rule_ids(body)
    assert "opioid-active" in ids, ids  # the prefetched medications were still checked
    card = unavailable_card(body)
    assert card["indicator"] == "warning"
    assert CONDITIONS in card["summary"]
    line = next(x for x in card["detail"].splitlines() if x.startswith(f"- {CONDITIONS}:"))
    assert says in line, line
    assert ("checked on what could be read" in line) is partial, line
    assert "fault-token" not in str(body)


def test_connection_refused(client: TestClient) -> None:
    body, elapsed = _call_with_conditions_from(client, f"http://127.0.0.1:{closed_port()}/fhir")
    print(f"fault refuse: {elapsed:.3f} s")
    assert elapsed < TIMEOUT_S + MARGIN_S
    assert "opioid-active" in rule_ids(body)
    assert "could not be reached (ConnectError)" in unavailable_card(body)["detail"]


def test_a_slow_but_working_server_is_not_a_fault(client: TestClient, fhir: FaultServer) -> None:
    body, elapsed = _call_with_conditions_from(client, fhir.base("slow"))
    assert 0.3 <= elapsed < TIMEOUT_S + MARGIN_S
    assert "data-unavailable" not in rule_ids(body) and "opioid-active" in rule_ids(body)


def test_redirects_and_offhost_links_are_not_followed(client: TestClient, fhir: FaultServer) -> None:
    fhir.requests.clear()
    _call_with_conditions_from(client, fhir.base("redirect"))
    _call_with_conditions_from(client, fhir.base("offhost"))
    assert not any(p.startswith("/slow/") for p in fhir.requests), fhir.requests  # the redirect target
    assert not any("page=2" in p for p in fhir.requests), fhir.requests  # the off-host next page


def test_every_category_hanging_is_still_200_with_the_warning(client: TestClient, fhir: FaultServer) -> None:
    """Nothing at all could be read: 200 + data-unavailable naming every category, not 412 (see module doc)."""
    body = hook_request(prefetch=None, fhir_server=fhir.base("hang", "all"))
    started = time.perf_counter()
    r = client.post(SIGN, json=body)
    elapsed = time.perf_counter() - started
    print(f"fault hang (every category): {elapsed:.3f} s")
    assert r.status_code == 200, r.text
    out = check_response(r)
    assert elapsed < TIMEOUT_S + MARGIN_S
    detail = unavailable_card(out)["detail"]
    for label in ("medication orders", "opioid urine screens", "liver tests", CONDITIONS, "allergies"):
        assert f"- {label}" in detail, (label, detail)
    assert "opioid-active" not in rule_ids(out)


def test_page_limit_on_a_real_server_marks_the_category_incomplete(fhir: FaultServer) -> None:
    settings = robust_settings(fhir={"timeout_s": TIMEOUT_S, "max_pages": 2})
    with TestClient(create_app(settings, clock=lambda: NOW), raise_server_exceptions=False) as c:
        before = len(fhir.requests)
        body, _ = _call_with_conditions_from(c, fhir.base("pages"))
    assert len(fhir.requests) - before == 2
    line = next(x for x in unavailable_card(body)["detail"].splitlines() if CONDITIONS in x)
    assert "more than 2 pages" in line and "checked on what could be read" in line


# ------------------------------------------------------------------------------ the resolver, without the app


def _resolve(fhir_server: str, settings: FetchSettings, prefetch: dict[str, Any]) -> Any:
    request = HookRequest.model_validate(hook_request(prefetch=prefetch, fhir_server=fhir_server))

    async def run() -> Any:
        # httpx's own timeouts far beyond the deadline: only resolve()'s one deadline can bound the time
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
            return await resolve(request, FhirFetcher(http, settings), ("http://127.0.0.1",))

    return asyncio.run(run())


def _only_conditions_missing() -> dict[str, Any]:
    prefetch = empty_prefetch()
    del prefetch["conditions"]
    return prefetch


def test_entry_limit_across_pages_keeps_what_fits_and_says_incomplete() -> None:
    entries = [condition("I10", "Essential hypertension", id=f"htn-{i}") for i in range(6)]
    with FaultServer(entries=entries, pages=3) as fhir:
        data = _resolve(fhir.base("pages"), FetchSettings(TIMEOUT_S, 10, max_entries=3), _only_conditions_missing())
    from cds_service.domain import Category

    assert len(data.resources[Category.CONDITIONS]) == 3
    [problem] = data.unavailable
    assert problem.partial and "more than 3 entries" in problem.reason
    assert data.fetch_errors == 0  # a limit is not a fetch error


def test_a_page_over_the_entry_limit_is_refused() -> None:
    entries = [condition("I10", "Essential hypertension", id=f"htn-{i}") for i in range(2)]
    with FaultServer(entries=entries, pages=1) as fhir:
        data = _resolve(fhir.base("pages"), FetchSettings(TIMEOUT_S, 10, max_entries=1), _only_conditions_missing())
    [problem] = data.unavailable
    assert not problem.partial and "array holds 2 items, over the limit of 1" in problem.reason
    assert data.fetch_errors == 1


def test_a_deadline_keeps_the_pages_read_before_it() -> None:
    """The prefetched first page (with a next link to a hanging server) is kept; the category is incomplete."""
    with FaultServer() as fhir:
        first = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": medication_request(id="mr-first")}],
            "link": [{"relation": "next", "url": f"{fhir.base('hang', 'all')}/MedicationRequest?page=2"}],
        }
        prefetch = {**empty_prefetch(), "medicationRequests": first}
        started = time.perf_counter()
        data = _resolve(fhir.base("hang", "all"), FetchSettings(0.5, 10), prefetch)
        elapsed = time.perf_counter() - started
    from cds_service.domain import Category

    assert elapsed < 0.5 + MARGIN_S
    assert [r["id"] for r in data.resources[Category.MEDICATIONS]] == ["mr-first"]
    [problem] = data.unavailable
    assert problem.partial and "did not answer within 0.5 s" in problem.reason


def test_no_fetch_happens_for_a_missing_patient_id_and_it_is_a_400(client: TestClient, fhir: FaultServer) -> None:
    body = hook_request(prefetch=_only_conditions_missing(), fhir_server=fhir.base("slow"))
    del body["context"]["patientId"]
    before = len(fhir.requests)
    r = client.post(SIGN, json=body)
    assert r.status_code == 400 and "patientId" in r.text
    assert len(fhir.requests) == before


def test_the_patient_read_uses_the_context_patient(fhir: FaultServer) -> None:
    prefetch = empty_prefetch()
    del prefetch["patient"]
    data = _resolve(fhir.base("slow", "Condition"), FetchSettings(TIMEOUT_S, 10), prefetch)
    from cds_service.domain import Category

    assert data.resources[Category.PATIENT][0]["id"] == PATIENT_ID
    assert data.unavailable == []


@pytest.mark.parametrize("link", ["http://[::1", "http://[abc]/x", "//[", "http://127.0.0.1:99999999/fhir/x", ""])
def test_a_malformed_next_link_is_incomplete_not_a_crash(link: str) -> None:
    with FaultServer() as fhir:
        first = {
            "resourceType": "Bundle",
            "entry": [{"resource": medication_request(id="mr-first")}],
            "link": [{"relation": "next", "url": link}],
        }
        data = _resolve(
            fhir.base("slow"), FetchSettings(TIMEOUT_S, 10), {**empty_prefetch(), "medicationRequests": first}
        )
    from cds_service.domain import Category

    assert [r["id"] for r in data.resources[Category.MEDICATIONS]] == ["mr-first"]
    if link:  # an empty url is no link at all
        [problem] = data.unavailable
        assert problem.partial, problem
