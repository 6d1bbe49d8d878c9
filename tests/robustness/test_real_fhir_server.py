"""The fallback fetch against a real FHIR engine (Medplum's router on loopback, tests/fhir_server).

Nothing is prefetched: the service reads every category from ``fhirServer`` itself, with its own query templates
(search by patient, code lists with systems, ``_sort=-date``, ``_count``) and follows the server's ``next`` links.

* A hand-made patient: an active oxycodone order, an ALT four times the upper limit, a negative urine screen,
  and 205 Conditions (more than the template's ``_count=200``) with opioid withdrawal among the last ones
  created, so that the answer depends on page 2 being read.
* Three Synthea patients (an active opioid, ALT results, a control) with dates moved so that their newest event
  was yesterday: the fallback path must give the same rule ids as the prefetch path, where the prefetch is built
  by querying the same server directly with the same templates.

Skipped when node or tests/fhir_server/node_modules is missing (``npm ci --prefix tests/fhir_server``) or when
the shared Synthea data is not beside this checkout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.hooks.services import PREFETCH
from tests.builders import (
    ICD10,
    LOINC,
    NOW,
    OXYCODONE_5,
    RXNORM,
    SNOMED,
    cc,
    day,
    instant,
    naltrexone_draft,
)
from tests.conftest import shared_data_or_skip
from tests.fhir_server_harness import FhirTestServer, available, next_link
from tests.robustness import SIGN, check_response, robust_settings, rule_ids

pytestmark = pytest.mark.fhir_server

SYNTHEA_ID = "https://github.com/synthetichealth/synthea"


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirTestServer]:
    ok, reason = available()
    if not ok:
        pytest.skip(reason)
    with FhirTestServer() as server:
        yield server


class Service:
    """The service with a real HTTP client that records every URL it fetches."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

        async def record(request: httpx.Request) -> None:
            self.fetched.append(str(request.url))

        http = httpx.AsyncClient(timeout=10.0, event_hooks={"request": [record]}, trust_env=False)
        settings = robust_settings(fhir={"timeout_s": 10.0})
        self.client = TestClient(create_app(settings, clock=lambda: NOW, http=http), raise_server_exceptions=False)

    def sign(self, patient_id: str, **body: Any) -> dict[str, Any]:
        request = {
            "hook": "order-sign",
            "hookInstance": "5b1f1b52-7c43-4d0e-9a43-0d7f2a6f0b11",
            "context": {
                "userId": "Practitioner/doc-1",
                "patientId": patient_id,
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": naltrexone_draft()}]},
            },
            **body,
        }
        r = self.client.post(SIGN, json=request)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = check_response(r)
        return out


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    s = Service()
    with s.client:
        yield s


# ------------------------------------------------------------------------------------------- hand-made patient


def _entry(n: int, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:7d0e5c1a-0000-4000-8000-{n:012d}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _hand_made_bundle() -> dict[str, Any]:
    patient_ref = {"reference": "urn:uuid:7d0e5c1a-0000-4000-8000-000000000000"}
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "gender": "male", "birthDate": "1980-05-01"},
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": patient_ref,
            "authoredOn": day(-10),
            "medicationCodeableConcept": cc(OXYCODONE_5[0], RXNORM, OXYCODONE_5[1]),
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": cc("1742-6", LOINC, "Alanine aminotransferase"),
            "subject": patient_ref,
            "effectiveDateTime": instant(-5),
            "valueQuantity": {"value": 160, "unit": "U/L"},
            "referenceRange": [{"high": {"value": 40, "unit": "U/L"}}],
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "code": cc("19295-5", LOINC, "Opiates [Presence] in Urine by Screen method"),
            "subject": patient_ref,
            "effectiveDateTime": instant(-1),
            "valueCodeableConcept": cc("260385009", SNOMED, "Negative"),
        },
    ]
    for i in range(204):  # more than the template's _count=200: the withdrawal below is on the second page
        resources.append(
            {
                "resourceType": "Condition",
                "subject": patient_ref,
                "code": cc("I10", ICD10, f"Essential hypertension (entry {i})"),
                "clinicalStatus": cc("resolved", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
                "onsetDateTime": day(-3000 + i),
                "abatementDateTime": day(-2000 + i),
            }
        )
    resources.append(
        {
            "resourceType": "Condition",
            "subject": patient_ref,
            "code": cc("F11.23", ICD10, "Opioid dependence with withdrawal"),
            "clinicalStatus": cc("active", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
            "verificationStatus": cc("confirmed", "http://terminology.hl7.org/CodeSystem/condition-ver-status"),
            "onsetDateTime": day(-2),
        }
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(n, r) for n, r in enumerate(resources)]}


def _patient_id(response: dict[str, Any]) -> str:
    for e in response["entry"]:
        location = e["response"].get("location", "")
        if location.startswith("Patient/"):
            return str(location.split("/")[1])
    raise AssertionError("no Patient in the transaction response")


def test_fallback_reads_everything_from_a_real_server_and_follows_its_pages(
    fhir: FhirTestServer, service: Service
) -> None:
    fhir.reset()
    patient_id = _patient_id(fhir.load_bundle(_hand_made_bundle()))
    pages = fhir.search_pages("Condition", {"patient": patient_id, "_count": 200})
    assert len(pages) == 2 and any("F11.23" in str(e) for e in pages[1]["entry"])  # the answer needs page 2

    service.fetched.clear()
    out = service.sign(patient_id, fhirServer=fhir.base_url)

    ids = rule_ids(out)
    for expected in ("opioid-active", "opioid-withdrawal", "liver-enzymes-elevated"):
        assert expected in ids, ids
    assert "data-unavailable" not in ids and "opioid-urine-missing" not in ids, ids
    assert len(service.fetched) == len(PREFETCH) + 1  # every template once, plus Condition page 2
    assert all(url.startswith(fhir.base_url + "/") for url in service.fetched)
    second_pages = [u for u in service.fetched if "_offset=" in u]
    assert len(second_pages) == 1 and "/Condition?" in second_pages[0], service.fetched
    liver = next(u for u in service.fetched if "1742-6" in u)
    assert "_sort=-date" in liver and "code=http://loinc.org|1742-6," in unquote(liver)


def test_a_page_limit_below_the_real_page_count_says_incomplete(fhir: FhirTestServer) -> None:
    fhir.reset()
    patient_id = _patient_id(fhir.load_bundle(_hand_made_bundle()))
    settings = robust_settings(fhir={"timeout_s": 10.0, "max_pages": 1})
    http = httpx.AsyncClient(timeout=10.0, trust_env=False)
    with TestClient(create_app(settings, clock=lambda: NOW, http=http), raise_server_exceptions=False) as c:
        body = {
            "hook": "order-sign",
            "hookInstance": "5b1f1b52-7c43-4d0e-9a43-0d7f2a6f0b12",
            "fhirServer": fhir.base_url,
            "context": {
                "userId": "Practitioner/doc-1",
                "patientId": patient_id,
                "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": naltrexone_draft()}]},
            },
        }
        out = check_response(c.post(SIGN, json=body))
    card = next(c for c in out["cards"] if c["source"]["topic"]["code"] == "data-unavailable")
    assert "problem list and diagnoses: incomplete: more than 1 pages" in card["detail"]
    assert "opioid-withdrawal" not in rule_ids(out)  # on page 2, which was not read: and the card says so


# --------------------------------------------------------------------------------------------- Synthea patients


def _synthea_rows() -> list[dict[str, str]]:
    root = shared_data_or_skip("synthetic-patients")
    from tests.rules import synthea

    rows = synthea.manifest(root)

    def smallest(pick: Any) -> dict[str, str]:
        return min((r for r in rows if pick(r)), key=lambda r: int(r["bytes"]))

    return [
        smallest(lambda r: int(r["opioid_MedicationRequest_active"]) > 0),
        smallest(lambda r: int(r["ALT_obs"]) > 0 and int(r["opioid_MedicationRequest"]) == 0),
        smallest(lambda r: r["selected_as"].startswith("control")),
    ]


def _prefetch_from(fhir: FhirTestServer, patient_id: str) -> dict[str, Any]:
    """Every prefetch key, read from the server with the services' own templates (all pages, one Bundle each)."""
    out: dict[str, Any] = {}
    for pk in PREFETCH:
        query = pk.template.replace("{{context.patientId}}", patient_id)
        first = fhir.get(query)
        if first["resourceType"] != "Bundle":
            out[pk.key] = first
            continue
        entries, page = list(first.get("entry", [])), first
        while (url := next_link(page)) is not None:
            page = fhir.get(url)
            entries += page.get("entry", [])
        out[pk.key] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return out


@pytest.fixture(scope="module")
def synthea_patients(fhir: FhirTestServer) -> list[tuple[str, str]]:
    """(file name, server patient id) of each loaded Synthea patient, dates moved so the newest event was yesterday."""
    import json

    from tests.rules import synthea

    root = shared_data_or_skip("synthetic-patients")
    rows = _synthea_rows()
    fhir.reset()
    for infra in sorted(root.glob("hospitalInformation*.json")) + sorted(root.glob("practitionerInformation*.json")):
        fhir.load_file(infra)
    loaded = []
    for row in rows:
        patient = synthea.load(root, row)
        days = synthea.offset_to(list(patient.resources), (NOW - timedelta(days=1)).date())
        bundle = synthea.shift_dates(json.loads(patient.file.read_text(encoding="utf-8")), days)
        fhir.load_bundle(bundle)
        [resource] = patient.of_type("Patient")
        [identifier] = [i["value"] for i in resource["identifier"] if i.get("system") == SYNTHEA_ID]
        [found] = fhir.search_all("Patient", {"identifier": f"{SYNTHEA_ID}|{identifier}"})
        loaded.append((row["file"], str(found["id"])))
    return loaded


def test_synthea_patients_get_the_same_cards_by_fallback_as_by_prefetch(
    fhir: FhirTestServer, service: Service, synthea_patients: list[tuple[str, str]]
) -> None:
    seen: dict[str, list[str]] = {}
    for name, patient_id in synthea_patients:
        by_prefetch = rule_ids(service.sign(patient_id, prefetch=_prefetch_from(fhir, patient_id)))
        by_fallback = rule_ids(service.sign(patient_id, fhirServer=fhir.base_url))
        assert sorted(by_fallback) == sorted(by_prefetch), name
        assert "data-unavailable" not in by_fallback, name
        seen[name] = by_fallback
    opioid_patient = synthea_patients[0][0]
    assert "opioid-active" in seen[opioid_patient], seen


def test_concurrent_fallback_calls_against_a_real_server(
    fhir: FhirTestServer, synthea_patients: list[tuple[str, str]]
) -> None:
    """Several hook calls at once, each fetching every category: all answer, none loses a category."""
    from cds_service.app import create_app as make

    app = make(robust_settings(fhir={"timeout_s": 10.0}), clock=lambda: NOW)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://service") as client,
        ):
            calls = []
            for _, patient_id in synthea_patients * 2:
                body = {
                    "hook": "order-sign",
                    "hookInstance": "5b1f1b52-7c43-4d0e-9a43-0d7f2a6f0b13",
                    "fhirServer": fhir.base_url,
                    "context": {
                        "userId": "Practitioner/doc-1",
                        "patientId": patient_id,
                        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": naltrexone_draft()}]},
                    },
                }
                calls.append(client.post(SIGN, json=body))
            return list(await asyncio.gather(*calls))

    for response in asyncio.run(run()):
        assert response.status_code == 200, response.text
        assert "data-unavailable" not in rule_ids(response.json())
