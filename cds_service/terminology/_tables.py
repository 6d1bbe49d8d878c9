"""Load the generated terminology tables once, at import, into dicts, frozensets and compiled patterns.

The JSON files in ``data/`` are written by ``scripts/build_terminology.py``; nothing here reads the shared
value sets. Everything built here is immutable and module-level so that lookups are O(1) and lock-free.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any, NamedTuple

_DATA = os.path.join(os.path.dirname(__file__), "data")


def _load(name: str) -> dict[str, Any]:
    with open(os.path.join(_DATA, name), "rb") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _invert(groups: dict[str, list[str]], skip: tuple[str, ...] = ()) -> dict[str, frozenset[str]]:
    """{group: [code]} -> {code: frozenset(groups)}."""
    out: dict[str, set[str]] = {}
    for group, codes in groups.items():
        if group in skip:
            continue
        for code in codes:
            out.setdefault(code, set()).add(group)
    return {code: frozenset(g) for code, g in out.items()}


_TOKEN_RE = re.compile(r"[a-z0-9#]+")


def compact(name: str) -> str:
    """Lookup form of a drug name: its lower-case tokens run together ("MS-Contin", "MS Contin" -> "mscontin")."""
    return "".join(_TOKEN_RE.findall(name.lower()))


_MED = _load("medications.json")
_LAB = _load("labs.json")
_COND = _load("conditions.json")

# -- medications ------------------------------------------------------------------------------------------------
_rx: dict[str, list[str]] = _MED["rxnorm"]
RX_GROUPS: dict[str, frozenset[str]] = _invert(_rx, skip=("long-acting", "antagonist-combo"))
RX_LONG_ACTING: frozenset[str] = frozenset(_rx["long-acting"])
RX_ANTAGONIST_COMBO: frozenset[str] = frozenset(_rx["antagonist-combo"])  # Embeda-type: opioid, not naltrexone

NALTREXONE_PRODUCT_CODES: dict[str, str] = {
    code: form for form, codes in _MED["naltrexone_products"].items() for code in codes
}  # form: "oral" | "injection" | "combo" | "ingredient" (form unknown)
ALLERGY_BY_CODE: dict[str, frozenset[str]] = _invert(_MED["allergy_rxnorm"])

INGREDIENT_GROUPS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in _MED["ingredients"].items()}
OPIOID_INGREDIENTS: frozenset[str] = frozenset(k for k, v in INGREDIENT_GROUPS.items() if "opioid" in v)
LONG_ACTING_INGREDIENTS: frozenset[str] = frozenset(_MED["long_acting_ingredients"])
NAME_INGREDIENTS: dict[str, frozenset[str]] = {compact(k): frozenset(v) for k, v in _MED["names"].items()}
# Longest name in tokens ("tylenol with codeine" = 3): a string is matched by looking up every run of 1..N
# consecutive tokens, which is word-boundary matching ("dihydrocodeine" is one token, never "codeine").
NAME_MAX_TOKENS: int = max(len(_TOKEN_RE.findall(k.lower())) for k in _MED["names"])
LONG_ACTING_NAMES: frozenset[str] = frozenset(compact(n) for n in _MED["long_acting_names"])
NALTREXONE_BRAND_FORMS: dict[str, str] = {compact(k): v for k, v in _MED["naltrexone_brand_forms"].items()}


# Extended-release / long-acting wording in a display or free text (only consulted when the drug is an opioid).
# RxNorm writes "12 HR ... Extended Release"; EHR text says "ER", "XR", "SR", "CR", "LA", "patch". Dosing intervals
# ("every 12 hours", "q12h", "q 12 hr") must not count, hence the look-behinds on the "<n> HR" form.
_LONG_ACTING_TEXT_RE = re.compile(
    r"(?<![a-z0-9])(?:"
    r"extended[\s\-]*release|ext[\s\-]*rel|long[\s\-]*acting|sustained[\s\-]*release|controlled[\s\-]*release"
    r"|prolonged[\s\-]*release|modified[\s\-]*release|slow[\s\-]*release|transdermal|patch(?:es)?|depot|implant"
    r"|er|xr|xl|sr|cr|la"
    r")(?![a-z0-9])"
    r"|(?<![a-z0-9.])(?<!every\s)(?<!q\s)(?:8|12|24|72|168)[\s\-]*(?:hr|hrs|hour|h)(?![a-z0-9])"
)

# Naltrexone dose-form cues in text (spec §1 table): the injectable is the only extended-release naltrexone
# without bupropion.
_INJECTION_TEXT_RE = re.compile(
    r"inject|suspension|intramuscular|extended[\s\-]*release"
    r"|(?<![a-z0-9])(?:inj|susp|im|vial|kit|depot|microspheres?|er|xr)(?![a-z0-9])"
    r"|(?<![a-z0-9.])380[\s\-]*mg"
)
_ORAL_TEXT_RE = re.compile(r"(?<![a-z0-9])(?:tablets?|tabs?|oral|po)(?![a-z0-9])|(?<![a-z0-9.])50[\s\-]*mg")


class Scan(NamedTuple):
    """What one display or free-text string names."""

    ingredients: frozenset[str]
    groups: frozenset[str]  # medication groups, with the Embeda-type rule applied
    long_acting: bool  # long-acting wording, a long-acting brand or ingredient, or an opioid/naltrexone combo
    antagonist_combo: bool  # naltrexone together with an opioid agonist (Embeda, Troxyca): not a naltrexone order
    brand_forms: frozenset[str]  # naltrexone dose forms implied by a brand: "oral" | "injection" | "combo"
    injection_cue: bool
    oral_cue: bool


@lru_cache(maxsize=8192)
def scan(text: str) -> Scan:
    low = text.lower()
    ingredients: set[str] = set()
    long_acting = False
    brand_forms: set[str] = set()
    tokens = _TOKEN_RE.findall(low)
    for i in range(len(tokens)):
        key = ""
        for token in tokens[i : i + NAME_MAX_TOKENS]:
            key += token
            found = NAME_INGREDIENTS.get(key)
            if found is None:
                continue
            ingredients |= found
            long_acting = long_acting or key in LONG_ACTING_NAMES
            if key in NALTREXONE_BRAND_FORMS:
                brand_forms.add(NALTREXONE_BRAND_FORMS[key])
    groups: set[str] = set()
    for ing in ingredients:
        groups |= INGREDIENT_GROUPS.get(ing, frozenset())
    combo = "naltrexone" in ingredients and bool(ingredients & OPIOID_INGREDIENTS)
    if combo:
        groups.discard("naltrexone")
    long_acting = (
        long_acting
        or combo
        or bool(ingredients & LONG_ACTING_INGREDIENTS)
        or _LONG_ACTING_TEXT_RE.search(low) is not None
    )
    return Scan(
        ingredients=frozenset(ingredients),
        groups=frozenset(groups),
        long_acting=long_acting,
        antagonist_combo=combo,
        brand_forms=frozenset(brand_forms),
        injection_cue=_INJECTION_TEXT_RE.search(low) is not None,
        oral_cue=_ORAL_TEXT_RE.search(low) is not None,
    )


# -- labs ------------------------------------------------------------------------------------------------------
LOINC_GROUPS: dict[str, frozenset[str]] = _invert(_LAB["loinc"])
URINE_ANALYTE: dict[str, str] = dict(_LAB["urine_analyte"])
URINE_SCREEN_ORDER: dict[str, str] = dict(_LAB["suggest"]["urine_screen"])
HEPATIC_PANEL: dict[str, str] = dict(_LAB["suggest"]["hepatic_panel"])
NALOXONE_NASAL: dict[str, str] = dict(_MED["suggest"]["naloxone_nasal_spray"])

# -- conditions ------------------------------------------------------------------------------------------------
ICD10_PREFIXES: dict[str, str] = dict(_COND["icd10_prefixes"])
ICD10_MAX_PREFIX: int = max(map(len, ICD10_PREFIXES))
SNOMED_CONDITION_GROUPS: dict[str, frozenset[str]] = _invert(_COND["snomed"])

del _MED, _LAB, _COND, _rx
