"""The one place that imports fhir.resources: FHIR R4 validation through its R4B models (EHRs send R4).

The FHIR door validates each resource that a rule will read, and only those: validating every prefetched
resource would cost tens of microseconds each for data no rule looks at.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError


class InvalidResource(ValueError):
    """Raised when a resource a rule needs is not valid FHIR R4; the message names the first bad field."""


def validate(resource: dict[str, Any]) -> None:
    """Check ``resource`` against its R4B model; raise InvalidResource with a short, PHI-free reason."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise InvalidResource("resourceType is missing")
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise InvalidResource(f"unknown resourceType {rtype!r}") from exc
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        kind = errors[0]["type"] if errors else "invalid"
        raise InvalidResource(f"{rtype}.{where or '(resource)'}: {kind}") from None
    except (TypeError, ValueError) as exc:  # fhir.resources raises these for some malformed primitives
        raise InvalidResource(f"{rtype}: {type(exc).__name__}") from None
