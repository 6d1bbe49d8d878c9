"""The service's own terminology: which codes and names mean opioid, naltrexone, ALT, opioid withdrawal, ...

The tables are generated from the CDC Opioid Prescribing IG value sets plus the codes the clinical spec lists
(``scripts/build_terminology.py`` -> ``cds_service/terminology/data/*.json``) and loaded once at import. Every
function here is pure and does O(1) work per coding, plus one cached regular-expression scan per distinct
display/text string.

Code-system rules:

- Medications and allergies: RxNorm codes count only when the coding's system is RxNorm; every coding's
  display (any system, local codes included) and the concept text are also read for ingredient and brand names,
  case-insensitively and on word boundaries ("HYDROcodone", "Acetaminophen/Hydrocodone", "MS-Contin").
- Labs: LOINC codes only (system ``http://loinc.org``); text is not used (lab names in free text are too loose).
- Conditions: ICD-10-CM (also the WHO ICD-10 system URI), with or without the dot, by the longest listed prefix;
  SNOMED CT by exact code. Text is not used: free-text problem entries ("no opioid withdrawal") are not evidence
  a stop card can rest on.

Decisions the spec leaves open (also in the project README, "Terminology"):

- Naltrexone combined with an opioid agonist (Embeda-type morphine/naltrexone, Troxyca oxycodone/naltrexone), by
  code or by one string naming both, is an opioid (long-acting), never a naltrexone order.
- A naltrexone concept without a dose form (ingredient 7243, text "naltrexone") is the oral tablet.
- Extended-release tramadol (in the CDC extended-release set) is long-acting; immediate-release tramadol is
  short-acting.
- Buprenorphine/naloxone and pentazocine/naloxone are opioids with group "naloxone" as medications, but an
  allergy to them is not a naloxone allergy (the substance is not naloxone alone). A bupropion/naltrexone
  (Contrave) allergy counts as a naltrexone allergy: both ingredients act systemically.
"""

from __future__ import annotations

from collections.abc import Iterable

from cds_service.domain import Coding, OpioidKind, Product
from cds_service.terminology import _tables as _t

__all__ = [
    "ALLERGY_GROUPS",
    "CONDITION_GROUPS",
    "HEPATIC_PANEL_DISPLAY",
    "HEPATIC_PANEL_LOINC",
    "ICD10CM_SYSTEM",
    "ICD10_SYSTEM",
    "LAB_GROUPS",
    "LOINC_SYSTEM",
    "MEDICATION_GROUPS",
    "NALOXONE_NASAL_DISPLAY",
    "NALOXONE_NASAL_RXNORM",
    "RXNORM_SYSTEM",
    "SNOMED_SYSTEM",
    "URINE_SCREEN_ORDER_DISPLAY",
    "URINE_SCREEN_ORDER_LOINC",
    "allergy_groups",
    "condition_groups",
    "lab_groups",
    "medication_groups",
    "naltrexone_product",
    "urine_analyte",
]

RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
_ICD_SYSTEMS = frozenset({ICD10CM_SYSTEM, ICD10_SYSTEM})

MEDICATION_GROUPS = frozenset({"opioid", "naltrexone", "naloxone", "nalmefene", "buprenorphine", "methadone"})
LAB_GROUPS = frozenset(
    {"urine-opioid", "alt", "ast", "bilirubin", "liver-panel", "hcg", "pregnancy-status", "lactation-status", "egfr"}
)
CONDITION_GROUPS = frozenset(
    {
        "opioid-withdrawal", "opioid-use-disorder", "opioid-use-disorder-remission", "hepatic-acute",
        "liver-chronic", "pregnancy", "lactation", "renal-impairment", "suicidal", "depression",
    }
)  # fmt: skip
ALLERGY_GROUPS = frozenset({"naltrexone", "naloxone", "nalmefene"})

# Spec §3 / §5: "Order a hepatic function panel" (LOINC long common name).
HEPATIC_PANEL_LOINC = "24325-3"
HEPATIC_PANEL_DISPLAY = "Hepatic function 2000 panel - Serum or Plasma"
# Spec §5 "Order a urine opioid screen": 19295-5 "Opiates [Presence] in Urine by Screen method", the first of the
# spec's common screens and the generic opiates immunoassay most labs offer (display from the CDC value set).
URINE_SCREEN_ORDER_LOINC = _t.URINE_SCREEN_ORDER["code"]
URINE_SCREEN_ORDER_DISPLAY = _t.URINE_SCREEN_ORDER["display"]
# Spec §5 `overdose-risk`: naloxone nasal spray; 1725059 is the generic SCD of the 4 mg spray (40 MG/ML x 0.1 mL).
NALOXONE_NASAL_RXNORM = _t.NALOXONE_NASAL["code"]
NALOXONE_NASAL_DISPLAY = _t.NALOXONE_NASAL["display"]

_EMPTY: frozenset[str] = frozenset()
_LONG_ACTING_GROUPS = frozenset({"methadone", "buprenorphine"})


def _code(coding: Coding) -> str | None:
    code = coding.code.strip() if coding.code else None
    return code or None


def _strings(codings: tuple[Coding, ...], text: str | None) -> list[str]:
    out = [c.display for c in codings if c.display]
    if text:
        out.append(text)
    return out


def _rxnorm_codes(codings: tuple[Coding, ...]) -> list[str]:
    return [code for c in codings if c.system == RXNORM_SYSTEM and (code := _code(c))]


def medication_groups(codings: Iterable[Coding], text: str | None) -> tuple[frozenset[str], OpioidKind | None]:
    """Medication groups of a drug concept, and for opioids how long-acting it is.

    Groups come from {"opioid", "naltrexone", "naloxone", "nalmefene", "buprenorphine", "methadone"}. The kind
    is LONG_ACTING for methadone, buprenorphine (also with naloxone) and extended-release/long-acting opioids (the
    CDC extended-release set, long-acting brands, "extended release"/"ER"/"XR"/"12 HR"/"patch" wording), else
    SHORT_ACTING for an opioid, and None when the drug is not an opioid.
    """
    codings = tuple(codings)
    groups: set[str] = set()
    long_acting = False
    combo = False
    for code in _rxnorm_codes(codings):
        groups |= _t.RX_GROUPS.get(code, _EMPTY)
        long_acting = long_acting or code in _t.RX_LONG_ACTING
        combo = combo or code in _t.RX_ANTAGONIST_COMBO
    for s in _strings(codings, text):
        sc = _t.scan(s)
        groups |= sc.groups
        long_acting = long_acting or sc.long_acting
        combo = combo or sc.antagonist_combo
    if combo:  # Embeda-type: an opioid, not a naltrexone order (spec §1)
        groups.discard("naltrexone")
        long_acting = True
    if "opioid" not in groups:
        return frozenset(groups), None
    if long_acting or groups & _LONG_ACTING_GROUPS:
        return frozenset(groups), OpioidKind.LONG_ACTING
    return frozenset(groups), OpioidKind.SHORT_ACTING


_PRODUCT_PRIORITY = (Product.COMBO, Product.INJECTION, Product.ORAL)


def naltrexone_product(codings: Iterable[Coding], text: str | None) -> Product | None:
    """Which naltrexone product a drug concept is, or None when it is not naltrexone (or is Embeda-type).

    A form-specific RxNorm code (1483744 oral, 637213 injection, 1551468 bupropion/naltrexone) decides; otherwise
    the wording does (Contrave or bupropion -> COMBO; Vivitrol, injection, suspension, 380 mg, extended-release ->
    INJECTION; ReVia, Depade, tablet, oral -> ORAL). Naltrexone without any form (ingredient 7243, plain
    "naltrexone") defaults to ORAL, the common product. Conflicting evidence resolves COMBO > INJECTION > ORAL.
    """
    codings = tuple(codings)
    groups, _ = medication_groups(codings, text)
    if "naltrexone" not in groups:
        return None
    forms: set[Product] = set()
    for code in _rxnorm_codes(codings):
        form = _t.NALTREXONE_PRODUCT_CODES.get(code)
        if form and form != "ingredient":
            forms.add(Product(form))
    if not forms:
        for s in _strings(codings, text):
            sc = _t.scan(s)
            if sc.brand_forms:
                forms |= {Product(f) for f in sc.brand_forms}
            elif "bupropion" in sc.ingredients:
                forms.add(Product.COMBO)
            elif sc.injection_cue:
                forms.add(Product.INJECTION)
            elif sc.oral_cue:
                forms.add(Product.ORAL)
    for product in _PRODUCT_PRIORITY:
        if product in forms:
            return product
    return Product.ORAL


def lab_groups(codings: Iterable[Coding], text: str | None = None) -> frozenset[str]:
    """Lab groups of an Observation code, by LOINC code only (``text`` is accepted for symmetry and ignored)."""
    groups: frozenset[str] = _EMPTY
    for c in codings:
        if c.system == LOINC_SYSTEM and (code := _code(c)):
            groups = groups | _t.LOINC_GROUPS.get(code, _EMPTY)
    return groups


def urine_analyte(codings: Iterable[Coding]) -> str | None:
    """Stable key of the substance an opioid urine test measures ("opiates", "morphine", "6-mam", "eddp", ...).

    Screen and confirmation tests of the same substance share a key, so the most recent result per key is the
    current one; parent drug, free drug and metabolites keep separate keys. None when no coding is an opioid
    urine test.
    """
    for c in codings:
        if c.system == LOINC_SYSTEM and (code := _code(c)) and (key := _t.URINE_ANALYTE.get(code)):
            return key
    return None


def _icd_group(code: str) -> str | None:
    norm = code.upper().replace(".", "").replace(" ", "")
    for n in range(min(len(norm), _t.ICD10_MAX_PREFIX), 2, -1):
        group = _t.ICD10_PREFIXES.get(norm[:n])
        if group:
            return group
    return None


def condition_groups(codings: Iterable[Coding], text: str | None = None) -> frozenset[str]:
    """Condition groups of a Condition code: ICD-10(-CM) by longest prefix, SNOMED CT exact (text ignored)."""
    groups: set[str] = set()
    for c in codings:
        code = _code(c)
        if not code:
            continue
        if c.system in _ICD_SYSTEMS:
            if group := _icd_group(code):
                groups.add(group)
        elif c.system == SNOMED_SYSTEM:
            groups |= _t.SNOMED_CONDITION_GROUPS.get(code, _EMPTY)
    return frozenset(groups)


def allergy_groups(codings: Iterable[Coding], text: str | None) -> frozenset[str]:
    """Allergy groups of an AllergyIntolerance substance: {"naltrexone"}, {"naloxone"}, {"nalmefene"} or empty.

    By RxNorm code (the ingredients 7243/7242/7237, the naltrexone products, naloxone-only products) or by name in
    a display or the text. A string that names the antagonist together with an opioid (buprenorphine/naloxone,
    morphine/naltrexone) does not count: the substance is then the combination, not the antagonist alone.
    """
    codings = tuple(codings)
    groups: set[str] = set()
    for code in _rxnorm_codes(codings):
        groups |= _t.ALLERGY_BY_CODE.get(code, _EMPTY)
    for s in _strings(codings, text):
        ingredients = _t.scan(s).ingredients
        with_opioid = bool(ingredients & _t.OPIOID_INGREDIENTS)
        groups |= {g for g in ingredients & ALLERGY_GROUPS if not with_opioid or g == "nalmefene"}
    return frozenset(groups)
