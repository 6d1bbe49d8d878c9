"""The FHIR door: raw prefetched/fetched resources in, a frozen ``PatientSnapshot`` out.

Resources are classified by code on the raw JSON first (cheap dict lookups), and only those a rule will read are
validated as FHIR R4 and turned into typed records. A relevant resource that is not valid FHIR is not silently
dropped: its category is reported as partly unreadable, which the data-unavailable card names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cds_service import terminology
from cds_service.domain import (
    AllergyRecord,
    Category,
    Coding,
    Concept,
    ConditionRecord,
    LabResult,
    MedicationUse,
    PatientInfo,
    PatientSnapshot,
    Unavailable,
)
from cds_service.fhir.r4b import Elements, InvalidResource, prepare, validate
from cds_service.fhir.resolve import ResolvedData
from cds_service.fhir.values import (
    MAX_DURATION_DAYS,
    as_dict,
    as_list,
    as_str,
    concept,
    first_code,
    parse_date,
    parse_datetime,
    parse_decimal,
    period_days,
    reference,
)

# What this module reads of each resource type it validates: only these elements (and those FHIR requires) are
# validated ("validate only what rules use", ``cds_service.fhir.r4b``). Keep in step with the readers below.
_META = {"lastUpdated": None}
READ_ELEMENTS: dict[str, Elements] = {
    "Observation": {
        "status": None, "code": None, "effective[x]": None, "issued": None, "value[x]": None,
        "interpretation": None, "referenceRange": None,
    },
    "MedicationRequest": {
        "meta": _META, "status": None, "medication[x]": None, "contained": None, "authoredOn": None,
        "dispenseRequest": {"validityPeriod": None, "expectedSupplyDuration": None, "numberOfRepeatsAllowed": None},
        "dosageInstruction": {"timing": {"repeat": {"bounds[x]": None}}},
    },
    "MedicationStatement": {
        "meta": _META, "status": None, "medication[x]": None, "contained": None, "effective[x]": None,
        "dateAsserted": None,
    },
    "MedicationDispense": {
        "meta": _META, "status": None, "medication[x]": None, "contained": None, "whenHandedOver": None,
        "whenPrepared": None, "daysSupply": None,
    },
    "Condition": {
        "code": None, "clinicalStatus": None, "verificationStatus": None, "onset[x]": None, "abatement[x]": None,
        "recordedDate": None,
    },
    "AllergyIntolerance": {
        "code": None, "reaction": {"substance": None, "manifestation": None}, "clinicalStatus": None,
        "verificationStatus": None, "criticality": None, "recordedDate": None,
    },
}  # fmt: skip
for _rtype, _elements in READ_ELEMENTS.items():
    prepare(_rtype, _elements)

LAB_CATEGORIES = (
    Category.URINE_SCREENS,
    Category.LIVER_TESTS,
    Category.PREGNANCY,
    Category.LACTATION,
    Category.RENAL,
)


# Classification memo: CodeableConcept content -> (Concept, terminology groups). Both are pure functions of the
# system/code/display/text values, and the same few hundred drugs, labs and problems recur in every chart and every
# call (a monthly refill, a yearly ALT), so each distinct concept is read and classified once per worker.
_Classifier = Callable[[tuple[Coding, ...], str | None], Any]
_CLASSIFIED: dict[tuple[Any, ...], tuple[Concept, Any]] = {}
_CLASSIFIED_MAX = 8192


def _concept_key(value: Any) -> tuple[Any, ...] | None:
    """The values ``concept`` reads from a CodeableConcept, as a key; None when the shape is unusual (not cached)."""
    if type(value) is not dict:
        return None
    codings = value.get("coding")
    if codings is None:
        return ((), value.get("text"))
    if type(codings) is not list:
        return None
    parts = []
    for c in codings:
        if type(c) is not dict:
            return None
        parts.append((c.get("system"), c.get("code"), c.get("display")))
    return (tuple(parts), value.get("text"))


def _classified(value: Any, classify: _Classifier) -> tuple[Concept, Any]:
    """``concept(value)`` and ``classify(its codings, its text)``, memoised by content."""
    key = _concept_key(value)
    if key is not None:
        key = (classify, *key)
        try:
            hit = _CLASSIFIED.get(key)
        except TypeError:  # an unhashable value where a string belongs: not cached
            key, hit = None, None
        if hit is not None:
            return hit
    found = concept(value)
    result = (found, classify(found.codings, found.text))
    if key is not None:
        if len(_CLASSIFIED) >= _CLASSIFIED_MAX:
            _CLASSIFIED.clear()
        _CLASSIFIED[key] = result
    return result


def _boolean_text(value: Any) -> str | None:
    """valueBoolean as the text answer rules already read ("true"/"false"), e.g. a breastfeeding status."""
    return ("true" if value else "false") if isinstance(value, bool) else None


def _bounds_end(res: dict[str, Any]) -> Any:
    for instr in as_list(res.get("dosageInstruction")):
        bounds = as_dict(as_dict(as_dict(as_dict(instr).get("timing")).get("repeat")).get("boundsPeriod"))
        if (end := parse_date(bounds.get("end"))) is not None:
            return end
    return None


class _Builder:
    def __init__(self, data: ResolvedData) -> None:
        self.data = data
        self.problems: dict[Category, list[str]] = {}
        self.medications_by_id: dict[str, dict[str, Any]] = {}
        for resources in data.resources.values():
            for res in resources:
                if res.get("resourceType") == "Medication" and (rid := as_str(res.get("id"))):
                    self.medications_by_id[f"Medication/{rid}"] = res

    def _valid(self, category: Category, res: dict[str, Any]) -> bool:
        try:
            rtype = res.get("resourceType")
            validate(res, READ_ELEMENTS.get(rtype) if isinstance(rtype, str) else None)
        except InvalidResource as exc:
            self.problems.setdefault(category, []).append(f"{reference(res)} is not valid FHIR ({exc})")
            return False
        return True

    # -- medications ------------------------------------------------------------------------------------------
    def _medication(self, res: dict[str, Any]) -> Any:
        if "medicationCodeableConcept" in res:
            return concept(res.get("medicationCodeableConcept"))
        ref = as_dict(res.get("medicationReference"))
        target = as_str(ref.get("reference")) or ""
        med = None
        if target.startswith("#"):
            med = next((c for c in as_list(res.get("contained")) if as_dict(c).get("id") == target[1:]), None)
        else:
            med = self.medications_by_id.get(target)
        if isinstance(med, dict):
            found = concept(med.get("code"))
            if found.codings or found.text:
                return found
        return concept({"text": ref.get("display")})

    def medications(self) -> list[MedicationUse]:
        out = []
        for res in self.data.resources.get(Category.MEDICATIONS, []):
            rtype = res.get("resourceType")
            if rtype not in ("MedicationRequest", "MedicationStatement", "MedicationDispense"):
                continue
            if "medicationCodeableConcept" in res:
                med, (groups, kind) = _classified(res["medicationCodeableConcept"], terminology.medication_groups)
            else:
                med = self._medication(res)
                groups, kind = terminology.medication_groups(med.codings, med.text)
            if not groups or not self._valid(Category.MEDICATIONS, res):
                continue
            out.append(self._medication_use(res, rtype, med, groups, kind))
        return out

    def _medication_use(self, res: dict[str, Any], rtype: str, med: Any, groups: Any, kind: Any) -> MedicationUse:
        status = as_str(res.get("status"))
        last_updated = parse_date(as_dict(res.get("meta")).get("lastUpdated"))
        if rtype == "MedicationRequest":
            dispense = as_dict(res.get("dispenseRequest"))
            validity = as_dict(dispense.get("validityPeriod"))
            authored = parse_date(res.get("authoredOn"))
            supply = period_days(dispense.get("expectedSupplyDuration"))
            repeats = dispense.get("numberOfRepeatsAllowed")
            bounds_end = _bounds_end(res)
            end, basis = parse_date(validity.get("end")), "validity period end"
            if end is None and bounds_end is not None:
                end, basis = bounds_end, "dosage bounds end"
            if end is None and authored is not None and supply is not None:
                fills = 1 + (
                    repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0 else 0
                )
                total = int(supply * fills)
                if total <= MAX_DURATION_DAYS:  # numberOfRepeatsAllowed 2147483647 is valid FHIR; timedelta is not
                    end, basis = (
                        authored + timedelta(days=total),
                        f"ordered {authored.isoformat()} + {total} days' supply",
                    )
            status_changed = last_updated if status in ("stopped", "completed", "cancelled") else None
            if end is None and status_changed is not None:
                # meta.lastUpdated is all we have: after a bulk import it is the import date, so say so
                end, basis = status_changed, "record last updated; the status change date is not recorded"
            return MedicationUse(
                ref=reference(res), source="request", medication=med, status=status, groups=groups,
                opioid_kind=kind, authored=authored, start=parse_date(validity.get("start")) or authored,
                end=end, end_basis=basis if end else None, days_supply=supply, status_changed=status_changed,
            )  # fmt: skip
        if rtype == "MedicationDispense":
            handed = parse_date(res.get("whenHandedOver")) or parse_date(res.get("whenPrepared"))
            supplied = period_days(res.get("daysSupply"))
            end = handed + timedelta(days=int(supplied)) if handed and supplied is not None else None
            dispensed = (
                f"dispensed {handed.isoformat()} + {int(supplied)} days' supply" if handed and supplied else None
            )
            return MedicationUse(
                ref=reference(res), source="dispense", medication=med, status=status, groups=groups,
                opioid_kind=kind, authored=handed, start=handed, end=end,
                end_basis=dispensed if end else None,
                days_supply=supplied,
            )  # fmt: skip
        period = as_dict(res.get("effectivePeriod"))
        start = parse_date(res.get("effectiveDateTime")) or parse_date(period.get("start"))
        end = parse_date(period.get("end"))
        return MedicationUse(
            ref=reference(res), source="statement", medication=med, status=status, groups=groups,
            opioid_kind=kind, authored=parse_date(res.get("dateAsserted")), start=start, end=end,
            end_basis="statement period end" if end else None,
        )  # fmt: skip

    # -- observations -----------------------------------------------------------------------------------------
    def labs(self) -> list[LabResult]:
        out = []
        seen: set[str] = set()
        for category in LAB_CATEGORIES:
            for res in self.data.resources.get(category, []):
                if res.get("resourceType") != "Observation":
                    continue
                code, groups = _classified(res.get("code"), terminology.lab_groups)
                if not groups:
                    continue
                key = reference(res)
                if key in seen and as_str(res.get("id")):
                    continue  # the same Observation can answer two prefetch keys
                seen.add(key)
                if not self._valid(category, res):
                    continue
                out.append(self._lab(res, code, groups))
        return out

    def _lab(self, res: dict[str, Any], code: Any, groups: frozenset[str]) -> LabResult:
        period = as_dict(res.get("effectivePeriod"))
        effective = (
            parse_datetime(res.get("effectiveDateTime"))
            or parse_datetime(res.get("effectiveInstant"))
            or parse_datetime(period.get("start"))
            or parse_datetime(res.get("issued"))
        )
        qty = as_dict(res.get("valueQuantity"))
        rng = as_dict(next(iter(as_list(res.get("referenceRange"))), None))
        high, low = as_dict(rng.get("high")), as_dict(rng.get("low"))
        interpretation = tuple(c for cc in as_list(res.get("interpretation")) for c in concept(cc).codings)
        return LabResult(
            ref=reference(res),
            code=code,
            status=as_str(res.get("status")),
            groups=groups,
            effective=effective,
            value=parse_decimal(qty.get("value")),
            unit=as_str(qty.get("unit")) or as_str(qty.get("code")),
            value_concept=concept(res["valueCodeableConcept"])
            if isinstance(res.get("valueCodeableConcept"), dict)
            else None,
            comparator=as_str(qty.get("comparator")),
            value_string=as_str(res.get("valueString")) or _boolean_text(res.get("valueBoolean")),
            interpretation=interpretation,
            ref_low=parse_decimal(low.get("value")),
            ref_high=parse_decimal(high.get("value")),
            ref_unit=as_str(high.get("unit")) or as_str(high.get("code")) or as_str(low.get("unit")),
            ref_text=as_str(rng.get("text")),
        )

    # -- conditions and allergies -----------------------------------------------------------------------------
    def conditions(self) -> list[ConditionRecord]:
        out = []
        for res in self.data.resources.get(Category.CONDITIONS, []):
            if res.get("resourceType") != "Condition":
                continue
            code, groups = _classified(res.get("code"), terminology.condition_groups)
            if not groups or not self._valid(Category.CONDITIONS, res):
                continue
            abatement = parse_date(res.get("abatementDateTime")) or parse_date(
                as_dict(res.get("abatementPeriod")).get("end")
            )
            abated = abatement is None and any(
                k in res for k in ("abatementString", "abatementAge", "abatementRange", "abatementBoolean")
            )
            out.append(
                ConditionRecord(
                    ref=reference(res),
                    code=code,
                    groups=groups,
                    clinical_status=first_code(res.get("clinicalStatus")),
                    verification_status=first_code(res.get("verificationStatus")),
                    onset=parse_date(res.get("onsetDateTime"))
                    or parse_date(as_dict(res.get("onsetPeriod")).get("start")),
                    abatement=abatement,
                    abated=abated,
                    recorded=parse_date(res.get("recordedDate")),
                )
            )
        return out

    def allergies(self) -> list[AllergyRecord]:
        out = []
        for res in self.data.resources.get(Category.ALLERGIES, []):
            if res.get("resourceType") != "AllergyIntolerance":
                continue
            substance, groups = _classified(res.get("code"), terminology.allergy_groups)
            reactions = [as_dict(r) for r in as_list(res.get("reaction"))]
            if not groups:
                for r in reactions:
                    rs = concept(r.get("substance"))
                    if g := terminology.allergy_groups(rs.codings, rs.text):
                        substance, groups = rs, g
                        break
            if not groups or not self._valid(Category.ALLERGIES, res):
                continue
            manifestations = tuple(
                concept(m).label for r in reactions for m in as_list(r.get("manifestation")) if isinstance(m, dict)
            )
            out.append(
                AllergyRecord(
                    ref=reference(res),
                    substance=substance,
                    groups=groups,
                    clinical_status=first_code(res.get("clinicalStatus")),
                    verification_status=first_code(res.get("verificationStatus")),
                    criticality=as_str(res.get("criticality")),
                    recorded=parse_date(res.get("recordedDate")),
                    reactions=manifestations,
                )
            )
        return out

    def patient(self) -> PatientInfo:
        for res in self.data.resources.get(Category.PATIENT, []):
            if res.get("resourceType") == "Patient":
                return PatientInfo(as_str(res.get("id")), as_str(res.get("gender")), parse_date(res.get("birthDate")))
        return PatientInfo(None)


def build_snapshot(data: ResolvedData, draft_medications: tuple[MedicationUse, ...] = ()) -> PatientSnapshot:
    """The one way rules get patient data. ``draft_medications`` are other orders drafted in the same session."""
    b = _Builder(data)
    medications = tuple(b.medications()) + draft_medications
    labs, conditions, allergies = tuple(b.labs()), tuple(b.conditions()), tuple(b.allergies())
    unavailable = list(data.unavailable)
    for category, problems in b.problems.items():
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        unavailable.append(Unavailable(category, f"partly unreadable: {shown}", partial=True))
    return PatientSnapshot(
        patient=b.patient(),
        medications=medications,
        labs=labs,
        conditions=conditions,
        allergies=allergies,
        unavailable=tuple(unavailable),
        provenance=tuple(sorted(data.provenance.items())),
    )
