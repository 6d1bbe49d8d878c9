"""The typed, frozen picture of a patient that the rules read.

Only the FHIR door (``cds_service.fhir``) builds these objects; rules receive them and never see raw FHIR JSON.
Everything here is immutable so that a rule cannot change what the next rule sees, and plain data so that
tests can build a snapshot in a line.

Terminology classification (is this drug an opioid, is this lab an ALT?) is done once by the door and stored
on each record as ``groups``: a rule asks ``"alt" in lab.groups`` instead of knowing code lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class Indicator(StrEnum):
    """CDS Hooks card indicator, ordered by urgency through ``rank``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Category(StrEnum):
    """A kind of patient data the rules need; the unit in which data can be missing or unreadable."""

    PATIENT = "patient"
    MEDICATIONS = "medications"
    URINE_SCREENS = "urine-screens"
    LIVER_TESTS = "liver-tests"
    PREGNANCY = "pregnancy-observations"
    LACTATION = "lactation-observations"
    RENAL = "renal-observations"
    CONDITIONS = "conditions"
    ALLERGIES = "allergies"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]


CATEGORY_LABELS: dict[Category, str] = {
    Category.PATIENT: "patient demographics",
    Category.MEDICATIONS: "medication orders, statements and dispenses",
    Category.URINE_SCREENS: "opioid urine screens",
    Category.LIVER_TESTS: "liver tests (ALT, AST)",
    Category.PREGNANCY: "pregnancy tests and pregnancy status",
    Category.LACTATION: "breastfeeding status",
    Category.RENAL: "kidney function (eGFR)",
    Category.CONDITIONS: "problem list and diagnoses",
    Category.ALLERGIES: "allergies",
}


class Product(StrEnum):
    """The naltrexone product being ordered."""

    ORAL = "oral"  # naltrexone hydrochloride 50 mg tablet
    INJECTION = "injection"  # naltrexone 380 mg extended-release injectable suspension
    COMBO = "combo"  # bupropion/naltrexone extended-release tablet

    @property
    def label(self) -> str:
        return {
            "oral": "naltrexone oral tablet",
            "injection": "naltrexone extended-release injection",
            "combo": "bupropion/naltrexone tablet",
        }[self.value]


class OpioidKind(StrEnum):
    """How long an opioid keeps a patient physiologically dependent: drives the opioid-free window."""

    SHORT_ACTING = "short-acting"
    LONG_ACTING = "long-acting"  # methadone, buprenorphine and extended-release / long-acting products


@dataclass(frozen=True, slots=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Concept:
    """A CodeableConcept reduced to what the rules and card text need."""

    codings: tuple[Coding, ...] = ()
    text: str | None = None

    @property
    def label(self) -> str:
        """Best human-readable name: text, then the first display, then the first code."""
        if self.text:
            return self.text
        for c in self.codings:
            if c.display:
                return c.display
        for c in self.codings:
            if c.code:
                return c.code
        return "unnamed"


@dataclass(frozen=True, slots=True)
class PatientInfo:
    id: str | None
    gender: str | None = None
    birth_date: date | None = None


@dataclass(frozen=True, slots=True)
class MedicationUse:
    """One medication record: a MedicationRequest, MedicationStatement, MedicationDispense or a draft order.

    ``end`` is when the supply or order runs out, as far as the record says, and ``end_basis`` says how it was
    worked out (e.g. "validity period end", "dispensed 2026-11-01 + 30 days' supply", "status changed").
    """

    ref: str  # "MedicationRequest/123"; for draft orders, the draft's reference
    source: str  # "request" | "statement" | "dispense" | "draft"
    medication: Concept
    status: str | None
    groups: frozenset[str]  # terminology groups, e.g. {"opioid"} or {"naltrexone"}
    opioid_kind: OpioidKind | None = None
    authored: date | None = None  # authoredOn / dateAsserted / whenHandedOver
    start: date | None = None  # effective start / validity start / handed over
    end: date | None = None
    end_basis: str | None = None
    days_supply: Decimal | None = None
    status_changed: date | None = None  # statusReason date / meta.lastUpdated where a status change is all we have

    @property
    def is_opioid(self) -> bool:
        return "opioid" in self.groups

    @property
    def is_naltrexone(self) -> bool:
        return "naltrexone" in self.groups


@dataclass(frozen=True, slots=True)
class LabResult:
    """One Observation that a rule may read: urine screens, ALT/AST, hCG, pregnancy/lactation status, eGFR.

    ``value`` is the numeric value when the Observation has a valueQuantity; ``value_concept`` and
    ``value_string`` keep coded and free-text answers. ``interpretation`` holds the interpretation codes as sent.
    """

    ref: str
    code: Concept
    status: str | None
    groups: frozenset[str]  # e.g. {"urine-opioid"}, {"alt"}, {"ast"}, {"hcg"}, {"egfr"}, {"pregnancy-status"}
    effective: datetime | None  # effective[x] / issued; timezone-aware (UTC when the source had no offset)
    value: Decimal | None = None
    unit: str | None = None
    comparator: str | None = None  # valueQuantity.comparator: "<", "<=", ">=", ">" (e.g. eGFR ">60")
    value_concept: Concept | None = None
    value_string: str | None = None
    interpretation: tuple[Coding, ...] = ()
    ref_low: Decimal | None = None
    ref_high: Decimal | None = None
    ref_unit: str | None = None
    ref_text: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionRecord:
    ref: str
    code: Concept
    groups: frozenset[str]  # e.g. {"opioid-withdrawal"}, {"hepatic-acute"}, {"depression"}
    clinical_status: str | None  # active | recurrence | relapse | inactive | remission | resolved
    verification_status: str | None  # unconfirmed | provisional | differential | confirmed | refuted | entered-in-error
    onset: date | None = None
    abatement: date | None = None
    abated: bool = False  # abatement[x] present in a form without a date (boolean true, string)
    recorded: date | None = None


@dataclass(frozen=True, slots=True)
class AllergyRecord:
    ref: str
    substance: Concept
    groups: frozenset[str]  # {"naltrexone"} | {"naloxone"} | {"nalmefene"}
    clinical_status: str | None
    verification_status: str | None
    criticality: str | None = None
    recorded: date | None = None
    reactions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A category the rules needed but could not read, and why (PHI-free: a status, a timeout, a page limit).

    ``partial`` means some of the category was read (a page limit, one invalid resource): rules still run on what
    was read, but a rule that fires on the *absence* of data must not conclude anything from it.
    """

    category: Category
    reason: str
    partial: bool = False


@dataclass(frozen=True, slots=True)
class PatientSnapshot:
    patient: PatientInfo
    medications: tuple[MedicationUse, ...] = ()
    labs: tuple[LabResult, ...] = ()
    conditions: tuple[ConditionRecord, ...] = ()
    allergies: tuple[AllergyRecord, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    # category -> "prefetch" | "fetched" | "none" (prefetch key was null); for the audit trail, not the rules
    provenance: tuple[tuple[Category, str], ...] = ()

    def is_available(self, category: Category) -> bool:
        """True when the category was read at least in part (rules that look for evidence may run)."""
        return all(u.category != category or u.partial for u in self.unavailable)

    def is_complete(self, category: Category) -> bool:
        """True when the category was read entirely (rules that fire on the absence of data may run)."""
        return all(u.category != category for u in self.unavailable)


@dataclass(frozen=True, slots=True)
class Dose:
    """One dosage instruction, reduced to amount and schedule."""

    amount_mg: Decimal | None  # None when the dose is not in mg (or unknown units), see ``amount_text``
    amount_text: str | None  # as ordered, e.g. "2 tablet" or "380 mg"
    frequency: int | None = None  # timing.repeat.frequency
    period: Decimal | None = None  # timing.repeat.period
    period_unit: str | None = None  # s | min | h | d | wk | mo | a
    days_of_week: tuple[str, ...] = ()  # timing.repeat.dayOfWeek (mon..sun)
    route: Concept | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class NaltrexoneOrder:
    """The draft naltrexone order under review."""

    ref: str  # "MedicationRequest/abc": the target of the "remove the order" suggestion
    product: Product
    medication: Concept
    status: str | None = None
    doses: tuple[Dose, ...] = ()  # empty: the clinician has not entered a dose yet
    expected_supply_days: Decimal | None = None  # dispenseRequest.expectedSupplyDuration in days
    refills: int | None = None  # dispenseRequest.numberOfRepeatsAllowed
    validity_start: date | None = None
    validity_end: date | None = None
    authored: date | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One line of a card's evidence list: a human sentence with dates, and the resource it came from."""

    text: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule concluded. The card renderer turns it into a CDS Hooks card using ``cards/<rule_id>.toml``.

    ``facts`` fills the named ``{placeholders}`` of that rule's summary and detail templates; ``variant`` picks an
    alternative wording in the card file (e.g. "naloxone" for the allergy rule), or is None for the default.
    """

    rule_id: str
    indicator: Indicator
    evidence: tuple[Evidence, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)
    variant: str | None = None
