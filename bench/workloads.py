"""Realistic hook requests for the benchmark: one patient's chart at any size, sent as an order-sign call.

The patient is an adult woman with alcohol use disorder about to start naltrexone 50 mg: a problem list of
chronic conditions, a long medication history (mostly non-opioids, a few finished opioid courses for back pain),
negative urine drug screens, normal liver tests, eGFR, a negative hCG, and a couple of allergies. Resources look
like what an EHR's FHIR API returns (identifiers, categories, encounter and performer references, narrative-free),
and every one is valid FHIR R4 (``python -m bench.workloads --check`` proves it), so the benchmark measures the
normal path, not the error path.

``prefetch(n)`` gives the same chart with ``n`` resources in total: the clinically meaningful records (the
"story") come first, and older history of the same mix fills the rest, so that the share of resources a rule must
read stays the same at every size. Dates are relative to ``now`` (the service evaluates against its own clock).

Prefetch keys are the service's own (``cds_service.hooks.services.PREFETCH``).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson

from cds_service.hooks.services import PREFETCH

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
PATIENT_ID = "eYz3kQ8w1vBq0F9sX2nT5mA3"
ORG = "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268"

Resource = dict[str, Any]

# Share of the chart per prefetch key (from a typical 100-resource order-sign prefetch; "patient" is always 1).
MIX: dict[str, int] = {
    "medicationRequests": 26,
    "medicationStatements": 8,
    "medicationDispenses": 12,
    "urineScreens": 6,
    "liverTests": 12,
    "pregnancyObservations": 3,
    "lactationObservations": 1,
    "renalObservations": 6,
    "conditions": 22,
    "allergies": 3,
}

NON_OPIOIDS = [
    ("314076", "lisinopril 10 MG Oral Tablet", "1 tablet by mouth daily", 1, "d"),
    ("861007", "metformin hydrochloride 500 MG Oral Tablet", "1 tablet by mouth twice daily with meals", 2, "d"),
    ("617312", "atorvastatin 20 MG Oral Tablet", "1 tablet by mouth at bedtime", 1, "d"),
    ("312941", "sertraline 50 MG Oral Tablet", "1 tablet by mouth daily", 1, "d"),
    ("310431", "gabapentin 300 MG Oral Capsule", "1 capsule by mouth three times daily", 3, "d"),
    ("197361", "amlodipine 5 MG Oral Tablet", "1 tablet by mouth daily", 1, "d"),
    ("197807", "ibuprofen 800 MG Oral Tablet", "1 tablet by mouth every 8 hours as needed for pain", 3, "d"),
    ("828348", "cyclobenzaprine hydrochloride 10 MG Oral Tablet", "1 tablet by mouth at bedtime as needed", 1, "d"),
    ("856377", "trazodone hydrochloride 50 MG Oral Tablet", "1 tablet by mouth at bedtime", 1, "d"),
    ("966571", "levothyroxine sodium 0.05 MG Oral Tablet", "1 tablet by mouth every morning", 1, "d"),
    ("349332", "escitalopram 10 MG Oral Tablet", "1 tablet by mouth daily", 1, "d"),
    ("310798", "hydrochlorothiazide 25 MG Oral Tablet", "1 tablet by mouth daily", 1, "d"),
    ("308182", "amoxicillin 500 MG Oral Capsule", "1 capsule by mouth three times daily for 10 days", 3, "d"),
    ("313782", "acetaminophen 325 MG Oral Tablet", "2 tablets by mouth every 6 hours as needed", 4, "d"),
]
OPIOIDS = [
    (
        "1049621",
        "oxycodone hydrochloride 5 MG Oral Tablet",
        "1 tablet by mouth every 6 hours as needed for pain",
        4,
        "d",
    ),
    (
        "856999",
        "Acetaminophen 325 MG / HYDROcodone Bitartrate 5 MG Oral Tablet",
        "1 tablet every 6 hours as needed",
        4,
        "d",
    ),
    ("835603", "tramadol hydrochloride 50 MG Oral Tablet", "1 tablet by mouth every 6 hours as needed", 4, "d"),
]
CONDITIONS = [
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("M54.50", "Low back pain, unspecified"),
    ("G89.29", "Other chronic pain"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("G47.00", "Insomnia, unspecified"),
    ("F41.1", "Generalized anxiety disorder"),
    ("E66.9", "Obesity, unspecified"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("F17.210", "Nicotine dependence, cigarettes, uncomplicated"),
    ("E03.9", "Hypothyroidism, unspecified"),
]


class _Chart:
    """Builds resources for one patient with deterministic ids and dates relative to ``now``."""

    def __init__(self, now: datetime, seed: int) -> None:
        self.now = now
        self.rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not security
        self.serial = 0

    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:07d}{self.rng.randrange(16**6):06x}"

    def day(self, days_ago: float) -> str:
        return (self.now - timedelta(days=days_ago)).date().isoformat()

    def instant(self, days_ago: float) -> str:
        t = (self.now - timedelta(days=days_ago)).replace(microsecond=0)
        return t.isoformat().replace("+00:00", "Z")

    def _meta(self, days_ago: float) -> dict[str, Any]:
        return {"versionId": str(self.rng.randrange(1, 9)), "lastUpdated": self.instant(days_ago)}

    def _identifier(self, kind: str) -> list[dict[str, Any]]:
        return [{"use": "usual", "system": f"{ORG}.{kind}", "value": str(self.rng.randrange(10**8, 10**9))}]

    def _subject(self) -> dict[str, Any]:
        return {"reference": f"Patient/{PATIENT_ID}", "display": "Harper, Morgan"}

    def _encounter(self) -> dict[str, Any]:
        return {"reference": f"Encounter/{self._id('enc')}", "identifier": self._identifier("3.698084")[0]}

    def _practitioner(self) -> dict[str, Any]:
        name = self.rng.choice(["Chen, Lisa MD", "Okafor, Daniel MD", "Rossi, Anna NP", "Patel, Ravi DO"])
        return {"reference": f"Practitioner/{self._id('prac')}", "type": "Practitioner", "display": name}

    # -- resources ------------------------------------------------------------------------------------------------
    def patient(self) -> Resource:
        return {
            "resourceType": "Patient",
            "id": PATIENT_ID,
            "meta": self._meta(3),
            "identifier": [
                {"use": "usual", "type": {"text": "MRN"}, "system": f"{ORG}.2.1.1", "value": "203713"},
                {"use": "usual", "system": "urn:oid:2.16.840.1.113883.4.1", "value": "xxx-xx-4821"},
            ],
            "active": True,
            "name": [{"use": "official", "text": "Morgan Harper", "family": "Harper", "given": ["Morgan", "Lee"]}],
            "telecom": [
                {"system": "phone", "value": "608-555-0134", "use": "home"},
                {"system": "email", "value": "morgan.harper@example.com", "rank": 1},
            ],
            "gender": "female",
            "birthDate": "1986-04-17",
            "address": [
                {
                    "use": "home",
                    "line": ["1979 Milky Way Dr."],
                    "city": "Verona",
                    "state": "WI",
                    "postalCode": "53593",
                    "country": "US",
                }
            ],
            "maritalStatus": {"text": "Single"},
            "communication": [
                {
                    "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en", "display": "English"}]},
                    "preferred": True,
                }
            ],
        }

    def _med_cc(self, drug: tuple[str, str, str, int, str]) -> dict[str, Any]:
        return {"coding": [{"system": RXNORM, "code": drug[0], "display": drug[1]}], "text": drug[1]}

    def _dosage(self, drug: tuple[str, str, str, int, str]) -> list[dict[str, Any]]:
        return [
            {
                "text": drug[2],
                "timing": {"repeat": {"frequency": drug[3], "period": 1, "periodUnit": drug[4]}},
                "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}], "text": "Oral"},
                "doseAndRate": [
                    {
                        "type": {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type", "code": "ordered"}
                            ]
                        },
                        "doseQuantity": {"value": 1, "unit": "tablet", "system": UCUM, "code": "{tbl}"},
                    }
                ],
            }
        ]

    def medication_request(
        self, drug: tuple[str, str, str, int, str], days_ago: float, supply: int, active: bool
    ) -> Resource:
        status = "active" if active else self.rng.choice(["completed", "stopped", "completed"])
        return {
            "resourceType": "MedicationRequest",
            "id": self._id("mr"),
            "meta": self._meta(days_ago if active else max(0.0, days_ago - supply)),
            "identifier": self._identifier("2.798268"),
            "status": status,
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                            "code": "outpatient",
                            "display": "Outpatient",
                        }
                    ],
                    "text": "Outpatient",
                }
            ],
            "medicationCodeableConcept": self._med_cc(drug),
            "subject": self._subject(),
            "encounter": self._encounter(),
            "authoredOn": self.instant(days_ago),
            "requester": self._practitioner(),
            "recorder": self._practitioner(),
            "courseOfTherapyType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                        "code": "acute" if supply <= 14 else "continuous",
                    }
                ]
            },
            "dosageInstruction": self._dosage(drug),
            "dispenseRequest": {
                "validityPeriod": {"start": self.day(days_ago), "end": self.day(days_ago - supply)},
                "numberOfRepeatsAllowed": 0 if supply <= 14 else 2,
                "quantity": {"value": supply * drug[3], "unit": "tablet", "system": UCUM, "code": "{tbl}"},
                "expectedSupplyDuration": {"value": supply, "unit": "Day", "system": UCUM, "code": "d"},
            },
        }

    def medication_statement(self, drug: tuple[str, str, str, int, str], days_ago: float, active: bool) -> Resource:
        res: Resource = {
            "resourceType": "MedicationStatement",
            "id": self._id("ms"),
            "meta": self._meta(days_ago),
            "status": "active" if active else "completed",
            "category": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medication-statement-category",
                        "code": "patientspecified",
                    }
                ]
            },
            "medicationCodeableConcept": self._med_cc(drug),
            "subject": self._subject(),
            "dateAsserted": self.instant(days_ago),
            "informationSource": {"reference": f"Patient/{PATIENT_ID}"},
            "dosage": [{"text": drug[2]}],
        }
        if active:
            res["effectivePeriod"] = {"start": self.day(days_ago)}
        else:
            res["effectivePeriod"] = {"start": self.day(days_ago), "end": self.day(max(days_ago - 30, 1))}
        return res

    def medication_dispense(self, drug: tuple[str, str, str, int, str], days_ago: float, supply: int) -> Resource:
        return {
            "resourceType": "MedicationDispense",
            "id": self._id("md"),
            "meta": self._meta(days_ago),
            "identifier": self._identifier("7.2.798268"),
            "status": "completed",
            "medicationCodeableConcept": self._med_cc(drug),
            "subject": self._subject(),
            "performer": [{"actor": {"display": "Verona Community Pharmacy"}}],
            "authorizingPrescription": [{"reference": f"MedicationRequest/{self._id('mr')}"}],
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "FF",
                        "display": "First Fill",
                    }
                ]
            },
            "quantity": {"value": supply * drug[3], "unit": "tablet", "system": UCUM, "code": "{tbl}"},
            "daysSupply": {"value": supply, "unit": "Day", "system": UCUM, "code": "d"},
            "whenPrepared": self.instant(days_ago + 0.2),
            "whenHandedOver": self.instant(days_ago),
            "dosageInstruction": [{"text": drug[2]}],
        }

    def _lab(self, loinc: str, display: str, days_ago: float, category: str = "laboratory") -> Resource:
        return {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "meta": self._meta(days_ago),
            "identifier": self._identifier("6.798268"),
            "basedOn": [{"reference": f"ServiceRequest/{self._id('sr')}"}],
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": category,
                            "display": category.title(),
                        }
                    ],
                    "text": category.title(),
                }
            ],
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
            "subject": self._subject(),
            "encounter": self._encounter(),
            "effectiveDateTime": self.instant(days_ago),
            "issued": self.instant(days_ago - 0.3),
            "performer": [self._practitioner()],
        }

    def quantity_lab(
        self,
        loinc: str,
        display: str,
        days_ago: float,
        value: float,
        unit: str,
        ucum: str,
        low: float | None,
        high: float | None,
    ) -> Resource:
        res = self._lab(loinc, display, days_ago)
        res["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": ucum}
        flag = "H" if high is not None and value > high else ("L" if low is not None and value < low else "N")
        res["interpretation"] = [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}
                ],
                "text": {"H": "High", "L": "Low", "N": "Normal"}[flag],
            }
        ]
        rng: dict[str, Any] = {
            "text": f"{low if low is not None else ''}-{high if high is not None else ''} {unit}".strip()
        }
        if low is not None:
            rng["low"] = {"value": low, "unit": unit, "system": UCUM, "code": ucum}
        if high is not None:
            rng["high"] = {"value": high, "unit": unit, "system": UCUM, "code": ucum}
        res["referenceRange"] = [rng]
        return res

    def coded_lab(self, loinc: str, display: str, days_ago: float, answer: tuple[str, str, str]) -> Resource:
        res = self._lab(loinc, display, days_ago)
        res["valueCodeableConcept"] = {
            "coding": [{"system": answer[0], "code": answer[1], "display": answer[2]}],
            "text": answer[2],
        }
        res["interpretation"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}
        ]
        return res

    def urine_screen(self, days_ago: float) -> Resource:
        loinc, display = self.rng.choice(
            [
                ("19295-5", "Opiates [Presence] in Urine by Screen method"),
                ("3879-4", "Opiates [Presence] in Urine"),
                ("19597-4", "Oxycodone [Presence] in Urine by Screen method"),
                ("19550-3", "Methadone [Presence] in Urine by Screen method"),
            ]
        )
        return self.coded_lab(loinc, display, days_ago, (SNOMED, "260385009", "Negative"))

    def liver_test(self, days_ago: float) -> Resource:
        if self.rng.random() < 0.5:
            return self.quantity_lab(
                "1742-6",
                "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
                days_ago,
                self.rng.randint(14, 38),
                "U/L",
                "U/L",
                7,
                56,
            )
        return self.quantity_lab(
            "1920-8",
            "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
            days_ago,
            self.rng.randint(12, 34),
            "U/L",
            "U/L",
            10,
            40,
        )

    def egfr(self, days_ago: float) -> Resource:
        return self.quantity_lab(
            "62238-1",
            "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
            "Creatinine-based formula (CKD-EPI)",
            days_ago,
            self.rng.randint(78, 104),
            "mL/min/1.73m2",
            "mL/min/{1.73_m2}",
            60,
            None,
        )

    def hcg(self, days_ago: float) -> Resource:
        return self.coded_lab(
            "2106-3",
            "Choriogonadotropin (pregnancy test) [Presence] in Urine",
            days_ago,
            (SNOMED, "260385009", "Negative"),
        )

    def pregnancy_status(self, days_ago: float) -> Resource:
        res = self.coded_lab("82810-3", "Pregnancy status", days_ago, (LOINC, "LA26683-5", "Not pregnant"))
        res["category"][0]["coding"][0]["code"] = "social-history"
        return res

    def lactation_status(self, days_ago: float) -> Resource:
        res = self.coded_lab("63895-7", "Breastfeeding status", days_ago, (LOINC, "LA32-8", "No"))
        res["category"][0]["coding"][0]["code"] = "social-history"
        return res

    def condition(self, code: str, display: str, onset_days_ago: float, active: bool = True) -> Resource:
        res: Resource = {
            "resourceType": "Condition",
            "id": self._id("cond"),
            "meta": self._meta(onset_days_ago / 2),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active" if active else "resolved",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                            "display": "Problem List Item",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": ICD10, "code": code, "display": display}], "text": display},
            "subject": self._subject(),
            "onsetDateTime": self.day(onset_days_ago),
            "recordedDate": self.day(onset_days_ago - 1),
            "recorder": self._practitioner(),
        }
        if not active:
            res["abatementDateTime"] = self.day(max(onset_days_ago - 200, 10))
        return res

    def allergy(self, code: str, display: str, reaction: str, days_ago: float) -> Resource:
        return {
            "resourceType": "AllergyIntolerance",
            "id": self._id("alg"),
            "meta": self._meta(days_ago),
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "confirmed",
                    }
                ]
            },
            "type": "allergy",
            "category": ["medication"],
            "criticality": "low",
            "code": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
            "patient": {"reference": f"Patient/{PATIENT_ID}"},
            "recordedDate": self.instant(days_ago),
            "reaction": [{"manifestation": [{"text": reaction}], "severity": "mild"}],
        }


# -- the chart ----------------------------------------------------------------------------------------------------
def _story(c: _Chart) -> dict[str, list[Resource]]:
    """The clinically meaningful records of the typical patient, newest first."""
    return {
        "medicationRequests": [
            c.medication_request(NON_OPIOIDS[0], 40, 90, True),
            c.medication_request(NON_OPIOIDS[1], 40, 90, True),
            c.medication_request(NON_OPIOIDS[3], 60, 90, True),
            c.medication_request(OPIOIDS[0], 95, 7, False),  # post-operative oxycodone, ended ~3 months ago
        ],
        "medicationStatements": [c.medication_statement(NON_OPIOIDS[13], 200, True)],
        "medicationDispenses": [
            c.medication_dispense(NON_OPIOIDS[0], 40, 90),
            c.medication_dispense(OPIOIDS[0], 95, 7),
        ],
        "urineScreens": [c.urine_screen(2)],
        "liverTests": [c.liver_test(20), c.liver_test(20)],
        "pregnancyObservations": [c.hcg(5)],
        "lactationObservations": [c.lactation_status(30)],
        "renalObservations": [c.egfr(20)],
        "conditions": [
            c.condition("F10.20", "Alcohol dependence, uncomplicated", 400),
            c.condition("F32.9", "Major depressive disorder, single episode, unspecified", 300),  # info card
            c.condition("F11.21", "Opioid dependence, in remission", 900),
        ],
        "allergies": [
            c.allergy("7980", "Penicillin G", "Hives", 2000),
            c.allergy("10180", "Sulfamethoxazole", "Rash", 1500),
        ],
    }


_History = Callable[[_Chart, int], Resource]


def _old_days(c: _Chart, i: int) -> float:
    """History gets older as it grows: about three records a week going back."""
    return 120 + i * 2.3 + c.rng.random()


_HISTORY: dict[str, _History] = {
    # 1 in 10 historical prescriptions is a finished opioid course (a chronic-pain history), the rest are not opioids.
    "medicationRequests": lambda c, i: c.medication_request(
        OPIOIDS[i % 3] if i % 10 == 7 else NON_OPIOIDS[i % len(NON_OPIOIDS)],
        _old_days(c, i),
        30 if i % 10 != 7 else 5,
        False,
    ),
    "medicationStatements": lambda c, i: c.medication_statement(
        NON_OPIOIDS[(i * 5) % len(NON_OPIOIDS)], _old_days(c, i), False
    ),
    "medicationDispenses": lambda c, i: c.medication_dispense(
        OPIOIDS[i % 3] if i % 10 == 3 else NON_OPIOIDS[(i * 3) % len(NON_OPIOIDS)],
        _old_days(c, i),
        30 if i % 10 != 3 else 5,
    ),
    "urineScreens": lambda c, i: c.urine_screen(_old_days(c, i) - 100),
    "liverTests": lambda c, i: c.liver_test(_old_days(c, i) - 60),
    "pregnancyObservations": lambda c, i: c.pregnancy_status(_old_days(c, i)) if i % 2 else c.hcg(_old_days(c, i)),
    "lactationObservations": lambda c, i: c.lactation_status(_old_days(c, i)),
    "renalObservations": lambda c, i: c.egfr(_old_days(c, i) - 30),
    "conditions": lambda c, i: c.condition(*CONDITIONS[i % len(CONDITIONS)], _old_days(c, i) + 200, active=i % 3 != 2),
    "allergies": lambda c, i: c.allergy(
        *[
            ("7980", "Penicillin G", "Hives"),
            ("2670", "Codeine", "Nausea"),
            ("1191", "Aspirin", "Wheezing"),
            ("733", "Ampicillin", "Rash"),
        ][i % 4],
        _old_days(c, i) + 500,
    ),
}


def _counts(n: int) -> dict[str, int]:
    """Split ``n - 1`` resources (one is the Patient) over the prefetch keys in MIX proportions (largest remainder)."""
    rest = max(n - 1, 0)
    total = sum(MIX.values())
    exact = {k: rest * v / total for k, v in MIX.items()}
    counts = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: rest - sum(counts.values())]:
        counts[k] += 1
    return counts


def prefetch(n: int = 100, *, now: datetime | None = None, seed: int = 7) -> dict[str, Any]:
    """Every prefetch key for a chart of ``n`` resources in total (``n`` >= 1)."""
    c = _Chart(now or datetime.now(UTC), seed)
    story = _story(c)
    out: dict[str, Any] = {"patient": c.patient()}
    for key, count in _counts(n).items():
        resources = story[key][:count]
        resources += [_HISTORY[key](c, i) for i in range(count - len(resources))]
        out[key] = {
            "resourceType": "Bundle",
            "id": c._id("bundle"),
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": f"https://fhir.example.org/api/FHIR/R4/{key}"}],
            "entry": [
                {
                    "fullUrl": f"https://fhir.example.org/api/FHIR/R4/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in resources
            ],
        }
    expected = {pk.key for pk in PREFETCH}
    if set(out) != expected:  # the service's prefetch keys changed: the benchmark must follow
        raise RuntimeError(f"workload keys {sorted(out)} differ from the service's prefetch keys {sorted(expected)}")
    return out


def naltrexone_draft(now: datetime) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": "draft-naltrexone-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "1483744", "display": "naltrexone hydrochloride 50 MG Oral Tablet"}],
            "text": "naltrexone hydrochloride 50 MG Oral Tablet",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authoredOn": now.date().isoformat(),
        "dosageInstruction": [
            {
                "text": "Take 1 tablet (50 mg) by mouth daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]},
                "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 5,
            "quantity": {"value": 30, "unit": "tablet", "system": UCUM, "code": "{tbl}"},
            "expectedSupplyDuration": {"value": 30, "unit": "Day", "system": UCUM, "code": "d"},
        },
    }


def hook_request(
    prefetch_value: dict[str, Any] | None, *, now: datetime | None = None, fhir_server: str | None = None
) -> dict[str, Any]:
    """An order-sign call for the naltrexone draft; ``prefetch_value`` None leaves every key out (fallback fetch)."""
    now = now or datetime.now(UTC)
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": "6f1c0c4e-2a7b-4e38-9a51-0c9d4f3f8e21",
        "context": {
            "userId": "Practitioner/prac-20394",
            "patientId": PATIENT_ID,
            "encounterId": "enc-88213",
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": naltrexone_draft(now)}],
            },
        },
    }
    if fhir_server:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {
            "access_token": "bench-token-not-a-secret",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "patient/*.read",
            "subject": "naltrexone-cds",
        }
    if prefetch_value is not None:
        body["prefetch"] = prefetch_value
    return body


def body(n: int, *, now: datetime | None = None) -> bytes:
    """The order-sign request with an ``n``-resource chart, as sent on the wire."""
    return orjson.dumps(hook_request(prefetch(n, now=now), now=now))


def resource_count(prefetch_value: dict[str, Any]) -> int:
    n = 0
    for value in prefetch_value.values():
        n += len(value.get("entry", [])) if value.get("resourceType") == "Bundle" else 1
    return n


def fallback_routes(n: int = 100, *, now: datetime | None = None) -> dict[str, bytes]:
    """What the fake FHIR server answers: rendered prefetch query (unquoted) -> response body."""
    pf = prefetch(n, now=now)
    routes = {}
    for pk in PREFETCH:
        path = pk.template.replace("{{context.patientId}}", PATIENT_ID)
        routes[unquote(path)] = orjson.dumps(pf[pk.key])
    return routes


def _check(sizes: list[int]) -> int:
    """Validate every resource of every size with fhir.resources R4B: the workload must be valid FHIR R4."""
    from fhir.resources.R4B import get_fhir_model_class

    bad = 0
    for n in sizes:
        pf = prefetch(n)
        resources = [pf["patient"]] + [
            e["resource"] for v in pf.values() if v.get("resourceType") == "Bundle" for e in v["entry"]
        ]
        draft = hook_request(pf)["context"]["draftOrders"]
        for res in [*resources, *(e["resource"] for e in draft["entry"])]:
            try:
                get_fhir_model_class(res["resourceType"]).model_validate(res)
            except Exception as exc:
                bad += 1
                print(f"INVALID {res['resourceType']}/{res.get('id')}: {str(exc)[:300]}", file=sys.stderr)
        print(f"{n:>6} requested: {resource_count(pf):>6} resources, {len(body(n)):>9} bytes, all checked")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark workloads: print sizes, or --check them against FHIR R4.")
    parser.add_argument("--check", action="store_true", help="validate every resource with fhir.resources R4B")
    parser.add_argument("--dump", type=int, metavar="N", help="write the N-resource order-sign request to stdout")
    args = parser.parse_args()
    if args.dump:
        sys.stdout.buffer.write(body(args.dump))
        return 0
    if args.check:
        return _check([10, 100, 1000])
    for n in (10, 100, 1000, 5000):
        print(f"{n:>6}: {len(body(n)):>9} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
