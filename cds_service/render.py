"""Turning findings into CDS Hooks cards, with wording, citations and override reasons from ``cards/*.toml``.

Card content is data reviewed by clinicians (see ``cards/README.md``); this module only picks the card, fills the
``{placeholders}`` with the finding's facts and evidence, and builds the suggestions' FHIR resources. Card files
are read once (``CardLibrary.load``), never per request.
"""

from __future__ import annotations

import string
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cds_service import terminology
from cds_service.domain import Finding, NaltrexoneOrder
from cds_service.hooks.models import Action, Card, CodingOut, Link, OverrideReason, Source, Suggestion

RULE_SYSTEM = "urn:naltrexone-cds:rule"
OVERRIDE_SYSTEM = "urn:naltrexone-cds:override-reason"
SUMMARY_MAX = 139

SUGGESTION_KINDS = ("remove-order", "order-urine-screen", "order-liver-panel", "prescribe-naloxone")


class CardContentError(ValueError):
    """A card file is missing, malformed or refers to something that does not exist; raised at start-up."""


@dataclass(frozen=True, slots=True)
class Wording:
    summary: str
    detail: str
    suggestions: tuple[str, ...] | None = None  # a variant may offer other suggestions than the card's default


@dataclass(frozen=True, slots=True)
class CardTemplate:
    rule_id: str
    title: str
    wording: Wording
    variants: Mapping[str, Wording]
    source_label: str
    source_url: str | None
    citation: str
    suggestions: tuple[str, ...]
    selection_behavior: str | None
    override_reasons: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]

    def placeholders(self) -> set[str]:
        """Every ``{name}`` used by the summary and detail templates of all variants."""
        names: set[str] = set()
        for w in (self.wording, *self.variants.values()):
            for text in (w.summary, w.detail):
                names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "(not recorded)"


def _suggestion_kinds(raw: Any, where: str) -> tuple[str, ...]:
    kinds = tuple(raw)
    unknown = set(kinds) - set(SUGGESTION_KINDS)
    if unknown:
        raise CardContentError(f"{where}: unknown suggestion kind(s) {sorted(unknown)}; known: {SUGGESTION_KINDS}")
    return kinds


def _wording(raw: Mapping[str, Any], where: str, *, variant: bool = False) -> Wording:
    summary, detail = raw.get("summary"), raw.get("detail")
    if not isinstance(summary, str) or not summary.strip() or not isinstance(detail, str) or not detail.strip():
        raise CardContentError(f"{where}: summary and detail must be non-empty strings")
    suggestions = _suggestion_kinds(raw["suggestions"], where) if variant and "suggestions" in raw else None
    return Wording(summary.strip(), detail.strip(), suggestions)


def _template(raw: Mapping[str, Any], name: str) -> CardTemplate:
    try:
        rule_id = raw["rule"]
        source = raw["source"]
        suggestions = _suggestion_kinds(raw.get("suggestions", ()), name)
        reasons = tuple((r["code"], r["display"]) for r in raw.get("override_reasons", ()))
        if any(not code or not display for code, display in reasons):
            raise CardContentError(f"{name}: every override reason needs a code and a display")
        selection = raw.get("selection_behavior")
        variants = {k: _wording(v, f"{name} [variants.{k}]", variant=True) for k, v in raw.get("variants", {}).items()}
        offers = suggestions or any(v.suggestions for v in variants.values())
        if offers and selection not in ("at-most-one", "any"):
            raise CardContentError(f"{name}: selection_behavior (at-most-one|any) is required with suggestions")
        return CardTemplate(
            rule_id=rule_id,
            title=raw["title"],
            wording=_wording(raw, name),
            variants=variants,
            source_label=source["label"],
            source_url=source.get("url"),
            citation=source["citation"],
            suggestions=suggestions,
            selection_behavior=selection if offers else None,
            override_reasons=reasons,
            links=tuple((link["label"], link["url"]) for link in raw.get("links", ())),
        )
    except KeyError as exc:
        raise CardContentError(f"{name}: missing key {exc}") from None


def _card_files() -> Iterator[tuple[str, bytes]]:
    root = resources.files("cds_service.card_content")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            yield entry.name, entry.read_bytes()


class CardLibrary:
    """All card templates, keyed by rule id."""

    def __init__(self, templates: Mapping[str, CardTemplate]) -> None:
        self.templates = dict(templates)

    @classmethod
    def load(cls) -> CardLibrary:
        templates: dict[str, CardTemplate] = {}
        for name, data in _card_files():
            try:
                raw = tomllib.loads(data.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise CardContentError(f"{name}: {exc}") from None
            tpl = _template(raw, name)
            if name != f"{tpl.rule_id}.toml":
                raise CardContentError(f"{name}: file name must be <rule id>.toml (rule = {tpl.rule_id!r})")
            templates[tpl.rule_id] = tpl
        return cls(templates)

    def render(self, finding: Finding, order: NaltrexoneOrder, patient_id: str | None) -> Card:
        tpl = self.templates[finding.rule_id]
        wording = tpl.variants.get(finding.variant, tpl.wording) if finding.variant else tpl.wording
        facts = _Facts(finding.facts)
        facts["product"] = order.product.label
        facts["evidence"] = (
            "\n".join(f"- {e.text}" + (f" (`{e.ref}`)" if e.ref else "") for e in finding.evidence)
            or "- (no individual record: the rule fired on what is absent)"
        )
        facts["citation"] = tpl.citation
        summary = " ".join(wording.summary.format_map(facts).split())
        if len(summary) > SUMMARY_MAX:
            summary = summary[: SUMMARY_MAX - 1].rstrip() + "…"
        detail = wording.detail.format_map(facts)
        kinds = wording.suggestions if wording.suggestions is not None else tpl.suggestions
        suggestions = [self._suggestion(kind, order, patient_id) for kind in kinds]
        return Card(
            uuid=str(uuid.uuid4()),
            summary=summary,
            detail=detail,
            indicator=finding.indicator.value,
            source=Source(
                label=tpl.source_label,
                url=tpl.source_url,
                topic=CodingOut(system=RULE_SYSTEM, code=tpl.rule_id, display=tpl.title),
            ),
            suggestions=suggestions,
            selectionBehavior=tpl.selection_behavior if suggestions else None,
            overrideReasons=[
                OverrideReason(system=OVERRIDE_SYSTEM, code=code, display=display)
                for code, display in tpl.override_reasons
            ]
            if finding.indicator.value != "info"
            else [],
            links=[Link(label=label, url=url) for label, url in tpl.links],
        )

    @staticmethod
    def _suggestion(kind: str, order: NaltrexoneOrder, patient_id: str | None) -> Suggestion:
        subject = {"reference": f"Patient/{patient_id}"} if patient_id else None
        if kind == "remove-order":
            return Suggestion(
                label="Remove the naltrexone order",
                uuid=str(uuid.uuid4()),
                isRecommended=True,
                actions=[
                    Action(
                        type="delete", description=f"Remove the draft {order.product.label} order", resourceId=order.ref
                    )
                ],
            )
        if kind in ("order-urine-screen", "order-liver-panel"):
            code, display, label = (
                (
                    terminology.URINE_SCREEN_ORDER_LOINC,
                    terminology.URINE_SCREEN_ORDER_DISPLAY,
                    "Order a urine opioid screen",
                )
                if kind == "order-urine-screen"
                else (
                    terminology.HEPATIC_PANEL_LOINC,
                    terminology.HEPATIC_PANEL_DISPLAY,
                    "Order a hepatic function panel",
                )
            )
            resource: dict[str, Any] = {
                "resourceType": "ServiceRequest",
                "status": "draft",
                "intent": "proposal",
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                "reasonCode": [{"text": f"Before starting {order.product.label}"}],
            }
            if subject:
                resource["subject"] = subject
            return Suggestion(
                label=label,
                uuid=str(uuid.uuid4()),
                isRecommended=True,
                actions=[Action(type="create", description=label, resource=resource)],
            )
        # prescribe-naloxone
        med = {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": terminology.NALOXONE_NASAL_RXNORM,
                    "display": terminology.NALOXONE_NASAL_DISPLAY,
                }
            ],
            "text": terminology.NALOXONE_NASAL_DISPLAY,
        }
        resource = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": med,
            "dosageInstruction": [
                {
                    "text": "For suspected opioid overdose: 1 spray in one nostril; may repeat every 2-3 minutes "
                    "in alternating nostrils. Call emergency services."
                }
            ],
            "dispenseRequest": {"quantity": {"value": 2, "unit": "spray device"}},
        }
        if subject:
            resource["subject"] = subject
        return Suggestion(
            label="Prescribe naloxone nasal spray",
            uuid=str(uuid.uuid4()),
            isRecommended=True,
            actions=[
                Action(type="create", description="Draft a naloxone 4 mg nasal spray prescription", resource=resource)
            ],
        )
