"""CDS Hooks 2.0 wire models: the request the EHR sends and the cards we answer with.

Incoming models are tolerant (unknown fields and ``extension`` pass through, FHIR content stays raw JSON for the
FHIR door); outgoing models forbid extras, and ``dump()`` omits every empty optional field because the spec
forbids ``null``, ``""``, ``[]`` and ``{}`` for absent values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class _Incoming(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FhirAuthorization(_Incoming):
    access_token: NonEmptyStr
    token_type: str = "Bearer"  # noqa: S105 - the token *type* name, not a secret
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None

    def __repr__(self) -> str:  # never let the token reach a log line through a repr
        return "FhirAuthorization(access_token=<redacted>)"

    __str__ = __repr__


class HookRequest(_Incoming):
    """The body of ``POST /cds-services/{id}``. Context stays a dict: its shape depends on the hook."""

    hook: NonEmptyStr
    hookInstance: NonEmptyStr
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _fhir_server_is_url(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError("fhirServer must be an absolute http(s) URL")
        return v


class _Outgoing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict without None values and without empty strings, lists or objects."""
        pruned: dict[str, Any] = _prune(self.model_dump(mode="json", exclude_none=True, by_alias=True))
        return pruned


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value if v not in (None, "", [], {})]
    return value


class CodingOut(_Outgoing):
    system: str | None = None
    code: str
    display: str | None = None


class OverrideReason(_Outgoing):
    system: str | None = None
    code: str
    display: NonEmptyStr  # the spec requires display on override reasons


class Source(_Outgoing):
    label: NonEmptyStr
    url: str | None = None
    icon: str | None = None
    topic: CodingOut | None = None


class Action(_Outgoing):
    type: Literal["create", "update", "delete"]
    description: NonEmptyStr
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Outgoing):
    label: NonEmptyStr
    uuid: str
    isRecommended: bool | None = None
    actions: list[Action] = Field(default_factory=list)


class Link(_Outgoing):
    label: NonEmptyStr
    url: str
    type: Literal["absolute", "smart"] = "absolute"
    appContext: str | None = None


class Card(_Outgoing):
    uuid: str
    summary: Annotated[str, StringConstraints(min_length=1, max_length=139)]
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] = Field(default_factory=list)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)


class CardsResponse(_Outgoing):
    cards: list[Card]

    def dump(self) -> dict[str, Any]:
        # ``cards`` is the one field that must be present even when empty.
        return {"cards": [c.dump() for c in self.cards]}


class FeedbackOverrideReason(_Incoming):
    reason: dict[str, Any] | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Incoming):
    id: NonEmptyStr


class FeedbackItem(_Incoming):
    card: NonEmptyStr
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list)
    overrideReason: FeedbackOverrideReason | None = None
    outcomeTimestamp: Annotated[NonEmptyStr, AfterValidator(_instant)]


def _instant(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("outcomeTimestamp must be an ISO 8601 date-time, e.g. 2026-11-21T10:00:00Z") from None
    return value


class FeedbackRequest(_Incoming):
    feedback: Annotated[list[FeedbackItem], Field(min_length=1)]
