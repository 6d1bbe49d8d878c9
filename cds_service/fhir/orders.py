"""Reading the draft orders in a hook's context: which naltrexone orders to check, and what else is being ordered.

Draft orders are parsed tolerantly, never strictly validated: EHRs and the reference sandbox send drafts with no
``Bundle.type``, ``category`` as an object, no ``intent``, STU3/DSTU2 shapes (medication-prescribe) and, in
order-select, drafts with no medication yet. A draft that cannot be read as a medication is simply not a naltrexone
order; a draft opioid in the same session counts as an active opioid for the opioid rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cds_service import terminology
from cds_service.domain import Concept, Dose, MedicationUse, NaltrexoneOrder, Product
from cds_service.errors import BadRequest
from cds_service.fhir.values import (
    as_dict,
    as_list,
    as_str,
    concept,
    parse_date,
    parse_decimal,
    period_days,
    reference,
)

ORDER_TYPES = frozenset(
    {"MedicationRequest", "MedicationOrder", "NutritionOrder", "ServiceRequest", "ProcedureRequest"}
)
MEDICATION_ORDER_TYPES = frozenset({"MedicationRequest", "MedicationOrder"})
_MG_UNITS = frozenset({"mg", "milligram", "milligrams"})
_TABLET_UNITS = frozenset({"tab", "tabs", "tablet", "tablets", "{tbl}", "{tablet}", "{tab}"})


@dataclass(frozen=True, slots=True)
class DraftOrders:
    to_check: tuple[NaltrexoneOrder, ...]
    other_medications: tuple[MedicationUse, ...]  # opioids (and others) drafted in the same session


def _entries(bundle: Any, where: str) -> list[dict[str, Any]]:
    if bundle is None:
        return []
    if isinstance(bundle, list):  # some clients send a bare array of resources
        return [r for r in bundle if isinstance(r, dict)]
    if not isinstance(bundle, dict):
        raise BadRequest(f"{where} must be a FHIR Bundle", expression=[where])
    if bundle.get("resourceType") not in (None, "Bundle"):
        return [bundle]  # a single resource where a Bundle belongs
    out = []
    for entry in as_list(bundle.get("entry")):
        res = as_dict(entry).get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict):
            out.append(res)
    return out


def _medication_concept(order: dict[str, Any], siblings: dict[str, dict[str, Any]]) -> Concept:
    if "medicationCodeableConcept" in order:
        return concept(order.get("medicationCodeableConcept"))
    ref = as_dict(order.get("medicationReference"))
    target = as_str(ref.get("reference"))
    if target:
        med: dict[str, Any] | None = None
        if target.startswith("#"):
            for c in as_list(order.get("contained")):
                if isinstance(c, dict) and c.get("id") == target[1:]:
                    med = c
        else:
            med = siblings.get(target) or siblings.get(target.rsplit("/", 1)[-1] if "/" in target else target)
        if med is not None:
            found = concept(med.get("code"))
            if found.codings or found.text:
                return found
    return Concept(text=as_str(ref.get("display")))


def _dose(instr: dict[str, Any], product: Product, medication: Concept) -> Dose | None:
    qty: dict[str, Any] = {}
    for dr in as_list(instr.get("doseAndRate")):
        if isinstance(dr, dict) and isinstance(dr.get("doseQuantity"), dict):
            qty = dr["doseQuantity"]
            break
    if not qty and isinstance(instr.get("doseQuantity"), dict):  # STU3 / DSTU2
        qty = instr["doseQuantity"]
    value = parse_decimal(qty.get("value"))
    unit = (as_str(qty.get("code")) or as_str(qty.get("unit")) or "").strip()
    amount_mg: Decimal | None = None
    if value is not None:
        if unit.lower() in _MG_UNITS:
            amount_mg = value
        elif unit.lower() in _TABLET_UNITS and product is Product.ORAL and _is_50mg_tablet(medication):
            amount_mg = value * 50  # tablets of the 50 mg oral product
    repeat = as_dict(as_dict(instr.get("timing")).get("repeat"))
    text = as_str(instr.get("text"))
    if value is None and not repeat and text is None:
        return None
    freq = repeat.get("frequency")
    return Dose(
        amount_mg=amount_mg,
        amount_text=(f"{value.normalize():f} {unit}".strip() if value is not None else None),
        frequency=freq if isinstance(freq, int) and not isinstance(freq, bool) else None,
        period=parse_decimal(repeat.get("period")),
        period_unit=as_str(repeat.get("periodUnit")),
        days_of_week=tuple(d for d in as_list(repeat.get("dayOfWeek")) if isinstance(d, str)),
        route=concept(instr.get("route")) if isinstance(instr.get("route"), dict) else None,
        text=text,
    )


def _is_50mg_tablet(medication: Concept) -> bool:
    return any(c.code == "1483744" for c in medication.codings) or "50 mg" in medication.label.lower()


def _naltrexone_order(res: dict[str, Any], product: Product, medication: Concept) -> NaltrexoneOrder:
    dispense = as_dict(res.get("dispenseRequest"))
    validity = as_dict(dispense.get("validityPeriod"))
    refills = dispense.get("numberOfRepeatsAllowed")
    doses = tuple(
        d
        for instr in as_list(res.get("dosageInstruction"))
        if isinstance(instr, dict) and (d := _dose(instr, product, medication)) is not None
    )
    return NaltrexoneOrder(
        ref=reference(res),
        product=product,
        medication=medication,
        status=as_str(res.get("status")),
        doses=doses,
        expected_supply_days=period_days(dispense.get("expectedSupplyDuration")),
        refills=refills if isinstance(refills, int) and not isinstance(refills, bool) and refills >= 0 else None,
        validity_start=parse_date(validity.get("start")),
        validity_end=parse_date(validity.get("end")),
        authored=parse_date(res.get("authoredOn") or res.get("dateWritten")),
    )


def read_draft_orders(hook: str, context: dict[str, Any]) -> DraftOrders:
    """Split the context's draft orders into naltrexone orders to check and other drafted medications."""
    if hook == "medication-prescribe":
        resources = _entries(context.get("medications"), "context.medications")
        selections: set[str] | None = None
    else:
        resources = _entries(context.get("draftOrders"), "context.draftOrders")
        selections = None
        if hook == "order-select":
            raw = context.get("selections")
            if raw is None:
                raise BadRequest("order-select needs context.selections", expression=["context.selections"])
            if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
                raise BadRequest("context.selections must be an array of strings", expression=["context.selections"])
            selections = set(raw)

    siblings: dict[str, dict[str, Any]] = {}
    for res in resources:
        if res.get("resourceType") == "Medication" and (rid := as_str(res.get("id"))):
            siblings[f"Medication/{rid}"] = res
            siblings[rid] = res

    to_check: list[NaltrexoneOrder] = []
    others: list[MedicationUse] = []
    for res in resources:
        if as_str(res.get("resourceType")) not in MEDICATION_ORDER_TYPES:
            continue
        medication = _medication_concept(res, siblings)
        if not medication.codings and not medication.text:
            continue  # order-select fires while the clinician is still typing: nothing to check yet
        ref = reference(res)
        selected = selections is None or ref in selections or as_str(res.get("id")) in selections
        product = terminology.naltrexone_product(medication.codings, medication.text)
        if product is not None and selected:
            to_check.append(_naltrexone_order(res, product, medication))
            continue
        groups, kind = terminology.medication_groups(medication.codings, medication.text)
        if groups:
            others.append(
                MedicationUse(
                    ref=ref,
                    source="draft",
                    medication=medication,
                    status=as_str(res.get("status")) or "draft",
                    groups=groups,
                    opioid_kind=kind,
                    authored=parse_date(res.get("authoredOn")),
                )
            )
    return DraftOrders(tuple(to_check), tuple(others))
