"""The service's exception tree and the one error shape it answers with (a FHIR OperationOutcome).

    ServiceError                 base; carries the HTTP status and the OperationOutcome issue code
    ├── BadRequest               400: the body is not a valid CDS Hooks request (JSON, types, hook mismatch)
    ├── NotFound                 404: no CDS service with that id
    ├── PayloadTooLarge          413: the body is over the configured size limit
    ├── PreconditionFailed       412: data the rules need was neither prefetched nor fetchable (no fhirServer)
    └── store.StoreUnavailable   503: the feedback store could not durably record feedback (nothing is lost silently)

``cds_service.app`` maps every one of them, plus FastAPI's own validation errors and any unexpected exception,
to an OperationOutcome in one place. Unauthorized (401) lives in ``cds_service.auth`` and carries no reason.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 500
    issue_code = "exception"

    def __init__(self, message: str, *, expression: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class BadRequest(ServiceError):
    status_code = 400
    issue_code = "invalid"


class NotFound(ServiceError):
    status_code = 404
    issue_code = "not-found"


class PayloadTooLarge(ServiceError):
    status_code = 413
    issue_code = "too-costly"


class PreconditionFailed(ServiceError):
    status_code = 412
    issue_code = "required"


def operation_outcome(
    message: str, *, code: str = "invalid", severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    """A minimal, valid R4 OperationOutcome with one issue; ``expression`` names the offending fields."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}
