"""Schemathesis against the service's own OpenAPI document (``GET /openapi.json``), in process over ASGI.

Two runs:

* the schema exactly as the app publishes it: every operation, generated path parameters (mostly unknown service
  ids: 404) and whatever bodies the document allows;
* the same document with one operation per real service and the request bodies the routes really read (hook
  requests shaped for that service's hook, feedback from the wire model). The routes read the raw body themselves,
  so FastAPI cannot publish these (see docs/robustness.md); without them generated calls never reach the hook logic.

Checks: ``not_a_server_error`` on every response, ``response_schema_conformance`` and ``content_type_conformance``
where the document declares the status, and this suite's own contract (4xx = OperationOutcome, 200 = cards with
no empty field). Bounded: at most 40 generated examples per operation, 10-20 s.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from cds_service.app import create_app
from cds_service.hooks.models import FeedbackRequest
from cds_service.hooks.services import PREFETCH, SERVICES
from tests.builders import NOW, PATIENT_ID
from tests.robustness import check_response, robust_settings

# A test dependency ([test] extras: schemathesis>=4.32,<5): without it, a clear skip rather than a collection error.
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[test]'")
openapi_checks = pytest.importorskip("schemathesis.specs.openapi.checks")

BOUNDED = settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.response_schema_conformance,
    openapi_checks.content_type_conformance,
]

app = create_app(robust_settings(), clock=lambda: NOW)
published = schemathesis.openapi.from_asgi("/openapi.json", app)


def _coding(*codes: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["coding"],
        "properties": {
            "coding": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {
                        "system": {"enum": sorted({s for s, _ in codes})},
                        "code": {"enum": [c for _, c in codes]},
                    },
                    "required": ["system", "code"],
                },
            },
            "text": {"type": "string", "maxLength": 40},
        },
    }


RXNORM, LOINC = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://loinc.org"
NALTREXONE = ((RXNORM, "1483744"), (RXNORM, "637213"), (RXNORM, "1551468"))
OPIOIDS = ((RXNORM, "1049621"), (RXNORM, "6813"), (RXNORM, "1819"))
DOSE = {
    "type": "object",
    "properties": {
        "doseAndRate": {
            "type": "array",
            "maxItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "doseQuantity": {
                        "type": "object",
                        "properties": {"value": {"type": "number"}, "unit": {"enum": ["mg", "tab"]}},
                    }
                },
            },
        },
        "timing": {
            "type": "object",
            "properties": {
                "repeat": {
                    "type": "object",
                    "properties": {
                        "frequency": {"type": "integer"},
                        "period": {"type": "number"},
                        "periodUnit": {"enum": ["d", "wk", "mo"]},
                    },
                }
            },
        },
    },
}


def _medication_request(codes: tuple[tuple[str, str], ...], ids: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "resourceType": {"enum": ["MedicationRequest", "MedicationOrder"]},
            "id": {"enum": ids},
            "status": {"enum": ["draft", "active", "completed", "stopped", "on-hold"]},
            "intent": {"enum": ["order", "proposal"]},
            "authoredOn": {"type": "string", "format": "date"},
            "medicationCodeableConcept": _coding(*codes),
            "dosageInstruction": {"type": "array", "maxItems": 2, "items": DOSE},
        },
        "required": ["resourceType", "id", "medicationCodeableConcept"],
    }


DRAFT = _medication_request(NALTREXONE, ["draft-ntx"])
OPIOID_ORDER = _medication_request(OPIOIDS, ["mr-1", "mr-2"])
OTHER = {
    "type": "object",
    "properties": {
        "resourceType": {"enum": ["Observation", "Condition", "AllergyIntolerance", "MedicationStatement"]},
        "status": {"enum": ["final", "preliminary", "active"]},
        "code": _coding((LOINC, "1742-6"), (LOINC, "19295-5"), (LOINC, "82810-3"), (LOINC, "98979-8")),
        "effectiveDateTime": {"type": "string", "format": "date-time"},
        "valueQuantity": {"type": "object", "properties": {"value": {"type": "number"}, "unit": {"type": "string"}}},
    },
    "required": ["resourceType"],
}


def _bundle(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["searchset", "collection"]},
            "entry": {
                "type": "array",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "object", "properties": {"resource": resource}, "required": ["resource"]},
            },
        },
        "required": ["resourceType"],
    }


def _hook_request(hook: str) -> dict[str, Any]:
    drafts = "medications" if hook == "medication-prescribe" else "draftOrders"
    required = ["patientId", drafts] + (["selections"] if hook == "order-select" else [])
    return {
        "type": "object",
        "properties": {
            "hook": {"const": hook},
            "hookInstance": {"type": "string", "format": "uuid"},
            "fhirServer": {"enum": ["http://127.0.0.1:9/fhir", "https://ehr.example.org/fhir"]},
            "context": {
                "type": "object",
                "properties": {
                    "userId": {"const": "Practitioner/doc-1"},
                    "patientId": {"const": PATIENT_ID},
                    drafts: _bundle(DRAFT),
                    "selections": {
                        "type": "array",
                        "maxItems": 2,
                        "minItems": 1,
                        "items": {"enum": ["MedicationRequest/draft-ntx", "draft-ntx", "MedicationRequest/other"]},
                    },
                },
                "required": required,
            },
            "prefetch": {
                "type": "object",
                "properties": {
                    pk.key: {"anyOf": [{"type": "null"}, _bundle(OPIOID_ORDER if "medication" in pk.key else OTHER)]}
                    for pk in PREFETCH
                },
            },
        },
        "required": ["hook", "hookInstance", "context"],
    }


def _with_request_bodies(raw: dict[str, Any]) -> dict[str, Any]:
    """The published document with one operation per real service, each with the body its route reads."""
    doc = copy.deepcopy(raw)
    hook_op = doc["paths"].pop("/cds-services/{service_id}")["post"]
    feedback_op = doc["paths"].pop("/cds-services/{service_id}/feedback")["post"]
    feedback = FeedbackRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = feedback.pop("$defs", {})
    definitions["FeedbackItem"]["properties"]["outcomeTimestamp"]["format"] = "date-time"  # validated as an instant
    doc.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
    for service in SERVICES.values():
        for path, template, body in (
            (f"/cds-services/{service.id}", hook_op, _hook_request(service.hook)),
            (f"/cds-services/{service.id}/feedback", feedback_op, feedback),
        ):
            operation = copy.deepcopy(template)
            operation["operationId"] += "_" + service.id.replace("-", "_")
            operation.pop("parameters", None)
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            doc["paths"][path] = {"post": operation}
    return doc


# The coverage phase enumerates every boundary of every field (about 2000 calls per hook operation here, a
# minute with the audit store writing each one); the published schema keeps it, the detailed one fuzzes instead.
augmented = schemathesis.openapi.from_dict(
    _with_request_bodies(published.raw_schema),
    config=schemathesis.config.SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
)
augmented.app = app


def _contract(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    check_response(response)


@published.parametrize()
@BOUNDED
def test_the_published_schema(case: Any) -> None:
    _contract(case)


@augmented.parametrize()
@BOUNDED
def test_the_schema_with_request_bodies(case: Any) -> None:
    _contract(case)
