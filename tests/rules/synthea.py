"""Synthea patients as CDS Hooks prefetch, with every date moved forward so the record ends "now".

The shared Synthea bundles (``../shared/data/synthetic-patients/``) end between 1969 and 2022, so any
"within the last N days" check would find nothing. ``shift_dates`` moves every FHIR date/dateTime string of a
resource by the same number of days (time of day and offset kept), which preserves every interval inside the
record; ``recent_prefetch`` picks the offset that puts the patient's newest clinical event at a chosen day.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from cds_service import terminology
from cds_service.fhir.values import concept

# A FHIR date (YYYY-MM-DD) or dateTime with time; partial dates (YYYY, YYYY-MM) are left alone: Synthea has none
# in the elements the rules read, and shifting them by days is not well defined.
FHIR_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$")
# Billing resources carry dates up to a year after the last visit (ExplanationOfBenefit.billablePeriod): they are
# not clinical events, so they do not decide where "now" is (they are shifted like everything else).
ADMINISTRATIVE = frozenset({"Claim", "ExplanationOfBenefit"})
LAB_KEYS = {
    "urine-opioid": "urineScreens",
    "alt": "liverTests", "ast": "liverTests", "bilirubin": "liverTests", "liver-panel": "liverTests",
    "hcg": "pregnancyObservations", "pregnancy-status": "pregnancyObservations",
    "lactation-status": "lactationObservations",
    "egfr": "renalObservations",
}  # fmt: skip
RESOURCE_KEYS = {
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "MedicationDispense": "medicationDispenses",
    "Condition": "conditions",
    "AllergyIntolerance": "allergies",
}


def _shift_one(value: str, days: int) -> str:
    m = FHIR_DATE.match(value)
    if not m:
        return value
    shifted = date.fromisoformat(m[1]) + timedelta(days=days)
    return shifted.isoformat() + (m[2] or "")


def shift_dates(value: Any, days: int) -> Any:
    """A copy of ``value`` (any JSON) with every FHIR date/dateTime string moved by ``days``."""
    if isinstance(value, dict):
        return {k: shift_dates(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, days) for v in value]
    if isinstance(value, str):
        return _shift_one(value, days)
    return value


def _dates(value: Any) -> list[date]:
    if isinstance(value, dict):
        return [d for v in value.values() for d in _dates(v)]
    if isinstance(value, list):
        return [d for v in value for d in _dates(v)]
    if isinstance(value, str) and (m := FHIR_DATE.match(value)):
        return [date.fromisoformat(m[1])]
    return []


def newest_clinical_date(resources: list[dict[str, Any]]) -> date:
    return max(d for r in resources if r.get("resourceType") not in ADMINISTRATIVE for d in _dates(r))


@dataclass(frozen=True)
class SyntheaPatient:
    file: Path
    patient_id: str
    row: dict[str, str]  # the manifest row
    resources: tuple[dict[str, Any], ...]

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r.get("resourceType") == resource_type]


def manifest(root: Path) -> list[dict[str, str]]:
    """Manifest rows of the patients (the infrastructure bundles have no patient id)."""
    with (root / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh) if row["patient_id"]]


def load(root: Path, row: dict[str, str]) -> SyntheaPatient:
    bundle = json.loads((root / row["file"]).read_text(encoding="utf-8"))
    resources = tuple(e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict))
    return SyntheaPatient(root / row["file"], row["patient_id"], row, resources)


def offset_to(resources: list[dict[str, Any]], newest: date) -> int:
    """Days to add so that the newest clinical date becomes ``newest``."""
    return (newest - newest_clinical_date(resources)).days


def prefetch(patient: SyntheaPatient, days: int) -> dict[str, Any]:
    """Every prefetch key of the services, filled from the patient's shifted resources.

    Observations are routed the way the services' code-filtered prefetch queries would route them (by lab group);
    other Observations are left out, as a FHIR server answering those queries would leave them out.
    """
    from cds_service.hooks.services import PREFETCH

    keys: dict[str, list[dict[str, Any]]] = {pk.key: [] for pk in PREFETCH if pk.key != "patient"}
    patient_resource: dict[str, Any] | None = None
    for res in patient.resources:
        rtype = res.get("resourceType")
        if rtype == "Patient":
            patient_resource = shift_dates(res, days)
        elif rtype in RESOURCE_KEYS:
            keys[RESOURCE_KEYS[rtype]].append(shift_dates(res, days))
        elif rtype == "Observation":
            code = concept(res.get("code"))
            for group in sorted(terminology.lab_groups(code.codings, code.text)):
                keys[LAB_KEYS[group]].append(shift_dates(res, days))
                break
    out: dict[str, Any] = {
        key: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
        for key, found in keys.items()
    }
    out["patient"] = patient_resource
    return out


def opioid_requests(patient: SyntheaPatient) -> list[dict[str, Any]]:
    """The patient's MedicationRequests for opioids, by the service's own terminology."""
    out = []
    for res in patient.of_type("MedicationRequest"):
        med = concept(res.get("medicationCodeableConcept"))
        groups, _ = terminology.medication_groups(med.codings, med.text)
        if "opioid" in groups:
            out.append(res)
    return out


def authored(res: dict[str, Any]) -> date:
    return datetime.fromisoformat(str(res["authoredOn"]).replace("Z", "+00:00")).date()
