"""The sandbox's synthetic patients (``fixtures/patients``): they load, are valid FHIR R4, stay recent, and each one
shows exactly the cards its ``_sandbox.expect`` list says when posted through the real service.

Adding a fixture file adds its test cases. The loader is also checked on the shapes other tools write:
Synthea transaction Bundles with ``urn:uuid`` references, a Bundle without fixture metadata, odd date strings.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.fhir.r4b import validate
from cds_service.policy import RULE_IDS
from cds_service.sandbox.fhir_server import build_prefetch
from cds_service.sandbox.orders import draft_order, hook_request
from cds_service.sandbox.patients import (
    LoadedFile,
    PatientFileError,
    build_store,
    fixture_files,
    load_data,
    load_fixtures,
    load_paths,
    newest_event,
    shift_dates,
)
from tests.conftest import shared_data_or_skip

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
FIXTURES = {f.source: f for f in load_fixtures(TODAY)}
NAMES = sorted(FIXTURES)

# Mixes the sandbox promises besides one patient per rule (issue: "realistic mixes").
MIXES = {
    "buprenorphine-maintenance.json",
    "oxycodone-course-3-days.json",
    "alcohol-alt-4x.json",
    "pregnant-urine-negative.json",
    "clean-record.json",
}


def _patient(f: LoadedFile) -> Any:
    assert len(f.patients) == 1
    return f.patients[0]


@pytest.fixture(scope="module")
def service() -> Any:
    app = create_app(Settings.development(), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _post(client: TestClient, f: LoadedFile, hook: str = "order-sign") -> dict[str, Any]:
    p = _patient(f)
    store, _ = build_store([f])
    assert p.order is not None
    draft = draft_order(p.order, p.id, TODAY, "fixture-draft")
    body = hook_request(hook, p.id, draft, prefetch=build_prefetch(store, p.id))
    service = {"order-sign": "naltrexone-order-sign", "order-select": "naltrexone-order-select"}[hook]
    r = client.post(f"/cds-services/{service}", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- the set of fixtures -----------------------------------------------------------------------------------------
def test_there_is_a_fixture_for_every_rule_and_every_promised_mix() -> None:
    covered = {rule for f in FIXTURES.values() for rule in _patient(f).expect or ()}
    assert set(RULE_IDS) <= covered, f"rules without a fixture patient: {sorted(set(RULE_IDS) - covered)}"
    assert set(FIXTURES) >= MIXES


def test_fixtures_are_found_through_the_installed_package() -> None:
    names = [name for name, _ in fixture_files()]
    assert names == NAMES and len(names) >= len(RULE_IDS)


def test_patient_ids_are_unique() -> None:
    store, warnings = build_store(FIXTURES.values())
    assert warnings == []
    assert len(store.patients) == len(FIXTURES)


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_complete(name: str) -> None:
    p = _patient(FIXTURES[name])
    assert p.description and "\n" not in p.description and len(p.description) < 240
    assert p.expect and set(p.expect) <= set(RULE_IDS), f"unknown rule ids: {set(p.expect) - set(RULE_IDS)}"
    assert p.order is not None


@pytest.mark.parametrize("name", NAMES)
def test_patients_are_obviously_synthetic(name: str) -> None:
    patient = _patient(FIXTURES[name]).resource
    assert patient["name"][0]["family"] == "Test"
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
        "code": "HTEST",
        "display": "test health data",
    } in (patient["meta"]["security"])


# -- valid FHIR R4 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_loaded_resource_is_valid_fhir_r4(name: str) -> None:
    f = FIXTURES[name]
    for res in f.resources:
        validate(res)  # raises InvalidResource naming the first bad field
    validate({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in f.resources]})


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_resolves_to_the_patient(name: str) -> None:
    f = FIXTURES[name]
    p = _patient(f)
    for res in f.resources:
        if res["resourceType"] != "Patient":
            ref = (res.get("subject") or res.get("patient") or {}).get("reference")
            assert ref == f"Patient/{p.id}"


# -- dates stay recent -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_dates_are_rolled_so_the_newest_event_is_recent(name: str) -> None:
    f = FIXTURES[name]
    newest = newest_event(r for r in f.resources if r["resourceType"] != "Patient")
    assert newest is not None
    assert TODAY - timedelta(days=31) <= newest <= TODAY, f"newest event {newest} is not within the last month"


def test_the_same_fixture_loaded_on_different_days_keeps_its_offsets() -> None:
    name, raw = next((n, r) for n, r in fixture_files() if n == "oxycodone-course-3-days.json")
    data = json.loads(raw)
    for today in (date(2030, 1, 1), date(2026, 2, 28), TODAY):
        f = load_data(data, name, today)
        request = next(r for r in f.resources if r["resourceType"] == "MedicationRequest")
        end = date.fromisoformat(request["dispenseRequest"]["validityPeriod"]["end"])
        assert today - end == timedelta(days=3)


# -- each fixture shows what it says -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_expected_rules_fire_through_the_service(service: TestClient, name: str) -> None:
    f = FIXTURES[name]
    cards = _post(service, f)["cards"]
    fired = sorted(c["source"]["topic"]["code"] for c in cards)
    assert fired == sorted(_patient(f).expect or ()), _patient(f).description


def test_the_clean_patient_gets_only_info_cards(service: TestClient) -> None:
    cards = _post(service, FIXTURES["clean-record.json"])["cards"]
    assert cards and {c["indicator"] for c in cards} == {"info"}


def test_the_opioid_active_patient_gets_the_stop_card_on_select_too(service: TestClient) -> None:
    cards = _post(service, FIXTURES["opioid-active.json"], hook="order-select")["cards"]
    assert cards[0]["indicator"] == "critical"
    assert cards[0]["source"]["topic"]["code"] == "opioid-active"
    assert cards[0]["suggestions"][0]["label"] == "Remove the naltrexone order"


# -- the loader on other shapes ----------------------------------------------------------------------------------
def _synthea_like() -> dict[str, Any]:
    pid, oid = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{pid}",
                "resource": {"resourceType": "Patient", "name": [{"given": ["Ann"], "family": "Example"}],
                             "birthDate": "1980-05-05"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"urn:uuid:{oid}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
                    "subject": {"reference": f"urn:uuid:{pid}"},
                    "effectiveDateTime": "2019-03-12T14:33:20-04:00",
                    "valueQuantity": {"value": 30, "unit": "U/L"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }  # fmt: skip


def test_transaction_bundles_get_ids_resolvable_references_and_recent_dates() -> None:
    f = load_data(_synthea_like(), "ann.json", date(2026, 6, 1), group="upload")
    patient, obs = f.resources
    assert patient["id"] == "11111111-2222-3333-4444-555555555555"
    assert obs["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert obs["effectiveDateTime"] == "2026-05-31T14:33:20-04:00"  # newest event lands yesterday; time kept
    assert f.patients[0].name == "Ann Example" and f.patients[0].expect is None
    assert f.patients[0].shift_days == (date(2026, 5, 31) - date(2019, 3, 12)).days


def test_roll_none_keeps_dates() -> None:
    f = load_data(_synthea_like(), "ann.json", date(2026, 6, 1), roll="none")
    assert f.resources[1]["effectiveDateTime"] == "2019-03-12T14:33:20-04:00"


def test_shift_dates_moves_full_dates_only() -> None:
    moved = shift_dates(
        {
            "authoredOn": "2026-02-27",
            "issued": "2026-02-27T23:59:59.123Z",
            "onsetDateTime": "2026",  # a year-only partial date is left alone
            "code": {"coding": [{"code": "2026-02-27"}]},  # identifiers and codes are never dates
            "id": "2026-02-27",
            "valueQuantity": {"value": 1819},
        },
        2,
    )
    assert moved == {
        "authoredOn": "2026-03-01",
        "issued": "2026-03-01T23:59:59.123Z",
        "onsetDateTime": "2026",
        "code": {"coding": [{"code": "2026-02-27"}]},
        "id": "2026-02-27",
        "valueQuantity": {"value": 1819},
    }


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"expect": [], "anchor": "2026-01-01"}, "description"),
        ({"description": "x", "expect": "opioid-active", "anchor": "2026-01-01"}, "expect"),
        ({"description": "x", "expect": [], "anchor": "soon"}, "anchor"),
        ({"description": "x", "expect": [], "anchor": "2026-01-01", "order": {"product": "patch"}}, "product"),
    ],
)
def test_bad_fixture_metadata_is_refused_with_a_reason(meta: dict[str, Any], message: str) -> None:
    data = {"resourceType": "Bundle", "type": "collection", "_sandbox": meta,
            "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}]}  # fmt: skip
    with pytest.raises(PatientFileError, match=message):
        load_data(data, "bad.json", TODAY)


def test_not_fhir_is_refused() -> None:
    with pytest.raises(PatientFileError, match="resourceType"):
        load_data({"hello": "world"}, "x.json", TODAY)


def test_the_shared_synthea_patients_load_with_resolvable_references() -> None:
    folder = shared_data_or_skip("synthetic-patients")
    files, warnings = load_paths([folder], TODAY)
    assert warnings == []
    store, more = build_store(files)
    assert more == [] and len(store.patients) >= 30
    for pid, p in store.patients.items():
        resources = store.resources_of(pid)
        assert resources, f"{p.source}: no resource references its Patient"
        newest = newest_event(resources)
        assert newest == TODAY - timedelta(days=1), p.source
    sample = next(iter(store.patients))
    for res in store.resources_of(sample)[:200]:
        validate(res)


def test_a_single_synthea_file_is_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(_synthea_like()))
    files, warnings = load_paths([tmp_path], TODAY)
    assert warnings == [] and files[0].patients[0].name == "Ann Example"
