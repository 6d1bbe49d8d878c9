"""The loopback FHIR test server (tests/fhir_server) and its Python harness, against real data.

Skipped when node or tests/fhir_server/node_modules is missing (install: npm ci --prefix tests/fhir_server).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fhir_server_harness import FhirTestServer, FhirTestServerError, available, next_link

pytestmark = pytest.mark.fhir_server

SYNTHETIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "synthetic-patients"
LOINC = "http://loinc.org"
ALT = "1742-6"
AST = "1920-8"
SYNTHEA_ID_SYSTEM = "https://github.com/synthetichealth/synthea"

JsonDict = dict[str, Any]


@pytest.fixture(scope="module")
def server() -> Iterator[FhirTestServer]:
    ok, reason = available()
    if not ok:
        pytest.skip(reason)
    with FhirTestServer() as fhir:
        yield fhir


@pytest.fixture
def fhir(server: FhirTestServer) -> FhirTestServer:
    server.reset()
    return server


def when(resource: JsonDict) -> datetime:
    return datetime.fromisoformat(resource["effectiveDateTime"])


def codes(resource: JsonDict, field: str = "code") -> set[str]:
    return {f"{c.get('system')}|{c.get('code')}" for c in resource.get(field, {}).get("coding", [])}


def assert_paged_links(fhir: FhirTestServer, pages: list[JsonDict], per_page: int) -> None:
    """Every page but the last is full and has an absolute `next` link on this server's base URL."""
    for page in pages[:-1]:
        assert len(page["entry"]) == per_page
        url = next_link(page)
        assert url is not None and url.startswith(fhir.base_url + "/"), url
    assert next_link(pages[-1]) is None


# ---------------------------------------------------------------------------------------------- hand-written


def small_bundle() -> JsonDict:
    patient = "urn:uuid:0b6c1c9e-4a8e-4d0e-9d7e-000000000001"

    def entry(n: int, resource: JsonDict) -> JsonDict:
        return {
            "fullUrl": f"urn:uuid:0b6c1c9e-4a8e-4d0e-9d7e-00000000000{n}",
            "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]},
        }

    def lab(code: str, value: float, at: str) -> JsonDict:
        return {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": patient},
            "effectiveDateTime": at,
            "valueQuantity": {
                "value": value,
                "unit": "U/L",
                "system": "http://unitsofmeasure.org",
                "code": "U/L",
            },
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(1, {"resourceType": "Patient", "name": [{"family": "Harness", "given": ["Tess"]}]}),
            # 14:00-05:00 is 19:00Z, after the AST at 18:00Z: the sort must compare instants, not strings.
            entry(2, lab(ALT, 48.0, "2024-03-01T14:00:00-05:00")),
            entry(3, lab(AST, 35.0, "2024-03-01T18:00:00+00:00")),
            entry(
                4,
                {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1483744"}]
                    },
                    "subject": {"reference": patient},
                    "authoredOn": "2024-03-02",
                },
            ),
        ],
    }


def test_transaction_assigns_ids_and_rewrites_urn_uuid_references(fhir: FhirTestServer) -> None:
    response = fhir.load_bundle(small_bundle())

    assert response["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201"] * 4
    locations = [e["response"]["location"] for e in response["entry"]]
    types = [loc.split("/")[0] for loc in locations]
    assert types == ["Patient", "Observation", "Observation", "MedicationRequest"]
    patient_id = locations[0].split("/")[1]
    assert fhir.get(f"Patient/{patient_id}")["name"][0]["family"] == "Harness"
    for loc in locations[1:]:
        stored = fhir.get(loc)
        assert stored["subject"] == {"reference": f"Patient/{patient_id}"}
    assert "urn:uuid" not in json.dumps([fhir.get(loc) for loc in locations])


def test_observation_search_sorts_by_instant_and_pages_with_absolute_next_links(fhir: FhirTestServer) -> None:
    response = fhir.load_bundle(small_bundle())
    patient_id = response["entry"][0]["response"]["location"].split("/")[1]

    params = {"patient": patient_id, "code": f"{LOINC}|{ALT},{LOINC}|{AST}", "_sort": "-date", "_count": 1}
    pages = fhir.search_pages("Observation", params)

    assert len(pages) == 2
    assert [p["total"] for p in pages] == [2, 2]
    assert_paged_links(fhir, pages, per_page=1)
    found = [e["resource"] for p in pages for e in p["entry"]]
    assert [codes(o) for o in found] == [{f"{LOINC}|{ALT}"}, {f"{LOINC}|{AST}"}]
    assert all(e["fullUrl"].startswith(fhir.base_url + "/Observation/") for p in pages for e in p["entry"])

    assert [codes(o) for o in fhir.search_all("Observation", {**params, "_sort": "date"})] == [
        {f"{LOINC}|{AST}"},
        {f"{LOINC}|{ALT}"},
    ]
    only_ast = fhir.search_all("Observation", {"patient": patient_id, "code": f"{LOINC}|{AST}"})
    assert [o["valueQuantity"]["value"] for o in only_ast] == [35.0]
    assert fhir.search_all("Observation", {"patient": "no-such-patient"}) == []


def test_medication_request_and_condition_search(fhir: FhirTestServer) -> None:
    response = fhir.load_bundle(small_bundle())
    patient_id = response["entry"][0]["response"]["location"].split("/")[1]

    meds = fhir.search_all("MedicationRequest", {"patient": patient_id})
    assert len(meds) == 1
    assert codes(meds[0], "medicationCodeableConcept") == {"http://www.nlm.nih.gov/research/umls/rxnorm|1483744"}
    assert fhir.search_all("MedicationRequest", {"patient": patient_id, "status": "active"}) == meds
    assert fhir.search_all("MedicationRequest", {"patient": patient_id, "status": "stopped"}) == []
    assert fhir.search_all("Condition", {"patient": patient_id}) == []


def test_failed_transaction_is_rolled_back(fhir: FhirTestServer) -> None:
    bundle = small_bundle()
    bundle["entry"][3]["resource"]["subject"] = {"reference": "Patient?identifier=http://example.org|missing"}

    with pytest.raises(FhirTestServerError, match="400"):
        fhir.load_bundle(bundle)
    assert fhir.search_all("Patient") == []
    assert fhir.search_all("Observation") == []


def test_reset_and_unsupported_search_parameter(fhir: FhirTestServer) -> None:
    fhir.load_bundle(small_bundle())
    assert len(fhir.search_all("Observation")) == 2
    with pytest.raises(FhirTestServerError, match="400"):
        fhir.get("Observation", {"no-such-param": "x"})
    fhir.reset()
    assert fhir.search_all("Observation") == []


# ---------------------------------------------------------------------------------------------- Synthea


def synthea_patient_file() -> tuple[Path, str]:
    """The smallest (by bytes) Synthea patient in the manifest that has ALT results, and its Synthea id."""
    manifest = SYNTHETIC / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"{manifest} is absent: the shared synthetic patients are not beside this checkout")
    with manifest.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["patient_id"] and int(r["ALT_obs"]) > 0]
    row = min(rows, key=lambda r: int(r["bytes"]))
    return SYNTHETIC / row["file"], row["patient_id"]


def resources_of(bundle: JsonDict, resource_type: str) -> list[JsonDict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def test_synthea_patient_round_trip(fhir: FhirTestServer) -> None:
    path, synthea_id = synthea_patient_file()
    source = json.loads(path.read_text(encoding="utf-8"))
    assert source["type"] == "transaction"
    # The shared infrastructure bundles first, as a Synthea upload would do them (these 2019 patient bundles
    # also carry their own Organization/Practitioner entries, so nothing dangles either way: checked below).
    for infra in sorted(SYNTHETIC.glob("hospitalInformation*.json")) + sorted(
        SYNTHETIC.glob("practitionerInformation*.json")
    ):
        fhir.load_file(infra)

    response = fhir.load_bundle(source)

    assert len(response["entry"]) == len(source["entry"])
    assert {e["response"]["status"] for e in response["entry"]} == {"201"}

    [source_patient] = resources_of(source, "Patient")
    assert source_patient["id"] == synthea_id
    [identifier] = [i["value"] for i in source_patient["identifier"] if i.get("system") == SYNTHEA_ID_SYSTEM]
    patients = fhir.search_all("Patient", {"identifier": f"{SYNTHEA_ID_SYSTEM}|{identifier}"})
    assert len(patients) == 1
    patient_id = patients[0]["id"]
    assert patient_id != synthea_id  # a real server assigns its own ids on create

    # ALT, AST and the patient's most frequent LOINC code, newest first, one per page, every page via `next`.
    source_obs = resources_of(source, "Observation")
    loinc_counts = Counter(c for o in source_obs for c in codes(o) if c.startswith(LOINC + "|"))
    frequent = loinc_counts.most_common(1)[0][0]
    wanted = {f"{LOINC}|{ALT}", f"{LOINC}|{AST}", frequent}
    expected = sorted((o for o in source_obs if codes(o) & wanted), key=when, reverse=True)
    assert any(f"{LOINC}|{ALT}" in codes(o) for o in expected)
    assert len(expected) >= 3
    params = {"patient": patient_id, "code": ",".join(sorted(wanted)), "_sort": "-date", "_count": 1}
    pages = fhir.search_pages("Observation", params)
    assert len(pages) == len(expected)
    assert_paged_links(fhir, pages, per_page=1)
    got = [e["resource"] for p in pages for e in p["entry"]]
    assert [when(o) for o in got] == [when(o) for o in expected]  # ties (same instant) may come in any order

    def obs_key(o: JsonDict) -> tuple[frozenset[str], datetime, Any]:
        return frozenset(codes(o)), when(o), o.get("valueQuantity", {}).get("value")

    assert Counter(map(obs_key, got)) == Counter(map(obs_key, expected))

    # Every Observation, default page size (20), via `next`.
    all_obs = fhir.search_all("Observation", {"patient": patient_id})
    assert len(all_obs) == len(source_obs)
    assert Counter(map(obs_key, all_obs)) == Counter(map(obs_key, source_obs))

    def summary(resources: list[JsonDict], field: str) -> Counter[tuple[frozenset[str], str | None]]:
        """Codes plus status (MedicationRequest) or onset (Condition), as a multiset."""
        return Counter((frozenset(codes(r, field)), r.get("status") or r.get("onsetDateTime")) for r in resources)

    expected_meds = resources_of(source, "MedicationRequest")
    got_meds = fhir.search_all("MedicationRequest", {"patient": patient_id})
    assert len(got_meds) == len(expected_meds)
    med = "medicationCodeableConcept"
    assert summary(got_meds, med) == summary(expected_meds, med)

    expected_conditions = resources_of(source, "Condition")
    got_conditions = fhir.search_all("Condition", {"patient": patient_id})
    assert len(got_conditions) == len(expected_conditions)
    assert summary(got_conditions, "code") == summary(expected_conditions, "code")

    # No urn:uuid survives, and every reference in the patient's data resolves on the server.
    stored = [fhir.get(e["response"]["location"]) for e in response["entry"]]
    text = json.dumps(stored)
    assert "urn:uuid:" not in text
    references = {
        ref
        for resource in stored
        for ref in _references(resource)
        if not ref.startswith("#")  # contained resources
    }
    assert references
    for ref in sorted(references):
        fhir.get(ref)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)
