"""Opioid rules over the shared Synthea patients, with every date shifted so the record ends yesterday.

Source: ``../shared/data/synthetic-patients/`` (smart-on-fhir/generated-sample-data, Synthea R4; see its README).
``manifest.csv`` counts each patient's opioid MedicationRequests (any status / active): the expected answers.
Traps covered: brand (SBD) and ingredient codes outside the CDC sets (Vicodin 1310197, remifentanil 73032),
``urn:uuid`` references, and a record whose dates end decades ago.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import NOW, hook_request, topics
from tests.conftest import SHARED_DATA
from tests.rules import SIGN, card
from tests.rules.synthea import (
    SyntheaPatient,
    authored,
    load,
    manifest,
    offset_to,
    opioid_requests,
    prefetch,
    shift_dates,
)

ROOT = SHARED_DATA / "synthetic-patients"
ROWS = manifest(ROOT) if (ROOT / "manifest.csv").exists() else []
ABSENT = pytest.param(None, marks=pytest.mark.skip(reason=f"{ROOT} is absent: no shared Synthea patients"))
YESTERDAY = NOW.date() - timedelta(days=1)


def _params(rows: list[dict[str, str]]) -> list[Any]:
    return [pytest.param(r, id=r["file"].split("_")[0] + "_" + r["file"].split("_")[1]) for r in rows] or [ABSENT]


def _active(row: dict[str, str]) -> bool:
    return int(row["opioid_MedicationRequest_active"]) > 0


def _post(client: TestClient, patient: SyntheaPatient, days: int) -> dict[str, Any]:
    body = hook_request(prefetch=prefetch(patient, days))
    body["context"]["patientId"] = patient.patient_id
    r = client.post(SIGN, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize("row", _params([r for r in ROWS if _active(r)]))
def test_every_active_opioid_prescription_gives_opioid_active(client: TestClient, row: dict[str, str]) -> None:
    patient = load(ROOT, row)
    out = _post(client, patient, offset_to(list(patient.resources), YESTERDAY))
    assert "data-unavailable" not in topics(out)  # every Synthea resource is valid R4 for the FHIR door
    detail = card(out, "opioid-active")["detail"]
    active = [r for r in opioid_requests(patient) if r["status"] == "active"]
    assert len(active) == int(row["opioid_MedicationRequest_active"])
    for res in active:
        assert f"MedicationRequest/{res['id']}" in detail


@pytest.mark.parametrize("row", _params([r for r in ROWS if not _active(r)]))
def test_no_active_opioid_means_no_opioid_active_card(client: TestClient, row: dict[str, str]) -> None:
    patient = load(ROOT, row)
    out = _post(client, patient, offset_to(list(patient.resources), YESTERDAY))
    assert "opioid-active" not in topics(out)
    assert "data-unavailable" not in topics(out)


@pytest.mark.parametrize("row", _params([r for r in ROWS if r["selected_as"].startswith("control")]))
def test_control_patient_gets_no_opioid_card(client: TestClient, row: dict[str, str]) -> None:
    patient = load(ROOT, row)
    assert not opioid_requests(patient)
    found = set(topics(_post(client, patient, offset_to(list(patient.resources), YESTERDAY))))
    assert not found & {"opioid-active", "opioid-recent", "opioid-urine-positive", "opioid-withdrawal"}
    assert "overdose-risk" in found  # every naltrexone order


STOPPED = [r for r in ROWS if int(r["opioid_MedicationRequest"]) > int(r["opioid_MedicationRequest_active"])]


@pytest.mark.parametrize("row", _params(STOPPED))
@pytest.mark.parametrize(
    ("ordered_days_ago", "fires"), [(3, True), (30, False)], ids=["ordered-3-days-ago", "ordered-30-days-ago"]
)
def test_stopped_opioid_without_end_date_is_recent_only_when_ordered_inside_the_window(
    client: TestClient, row: dict[str, str], ordered_days_ago: int, fires: bool
) -> None:
    """Synthea's stopped opioid orders carry no end date: the order date is the only bound (opioid_recent docs)."""
    patient = load(ROOT, row)
    stopped = [r for r in opioid_requests(patient) if r["status"] != "active"]
    latest = max(authored(r) for r in stopped)
    days = (NOW.date() - timedelta(days=ordered_days_ago) - latest).days
    out = _post(client, patient, days)
    assert ("opioid-recent" in topics(out)) is fires
    if fires:
        c = card(out, "opioid-recent")
        assert c["indicator"] == "critical"
        assert "end date not recorded; ordered" in c["detail"]


def test_shift_dates_moves_every_date_and_keeps_time_and_offset() -> None:
    res: dict[str, Any] = {
        "authoredOn": "2017-02-10T09:56:48+00:00",
        "period": {"start": "2017-02-10", "end": "2017-03-01T10:00:00Z"},
        "code": {"text": "seen 2017-02-10 (free text)"},
        "birthDate": "1980-12-30",
        "version": "4.0.1",
        "partial": "2017-02",
        "value": 2017,
    }
    out = shift_dates(res, 10)
    assert out["authoredOn"] == "2017-02-20T09:56:48+00:00"
    assert out["period"] == {"start": "2017-02-20", "end": "2017-03-11T10:00:00Z"}
    assert out["code"]["text"] == res["code"]["text"]  # dates inside free text are left alone
    assert out["birthDate"] == "1981-01-09"
    assert (out["version"], out["partial"], out["value"]) == ("4.0.1", "2017-02", 2017)
    assert res["authoredOn"] == "2017-02-10T09:56:48+00:00"  # the input is not modified
