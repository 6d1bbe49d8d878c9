#!/usr/bin/env python3
"""Build the service's compact terminology tables from the shared CDC value sets.

Run from the repository root::

    .venv/bin/python scripts/build_terminology.py [SOURCE_DIR] [--out OUT_DIR]

``SOURCE_DIR`` defaults to ``../shared/data/terminology`` (relative to the repository root, i.e. the folder that
holds ``cdc-opioid-cds-r4/``, ``cdc-opioid-mme-r4/`` and ``README.md``); ``OUT_DIR`` defaults to
``cds_service/terminology/data``. The script writes three files:

- ``medications.json``: RxNorm codes per group (opioid, long-acting, buprenorphine, methadone, naloxone,
  naltrexone, antagonist-combo), naltrexone product codes, allergy codes, and the ingredient and brand names
  that the runtime matches in displays and free text.
- ``labs.json``: LOINC codes per lab group (urine-opioid, alt, ast, ...), a stable analyte key for every urine
  opioid code, and the urine codes that were dropped with the reason for each.
- ``conditions.json``: ICD-10-CM prefixes (without the dot) and SNOMED CT codes per condition group.

Every file has a ``header`` naming the source files (path, canonical URL, expansion timestamp, SHA-256), the
source repository and commit (read from the terminology README), and generation notes (counts, exclusions,
checks). Output is sorted, contains no timestamps of its own and is byte-identical on every run over the same
sources; ``tests/test_terminology.py`` checks that by rebuilding into a temporary folder.

Codes that the clinical spec (``../shared/docs/clinical-rules.md``) names but the value sets do not hold are
constants below, each with the spec section it comes from. The script fails (exit 1) when a source file is
missing, when a value-set code that the spec relies on is absent, or when a naltrexone/naloxone urine test would
survive the filters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "terminology"
DEFAULT_OUT = REPO_ROOT / "cds_service" / "terminology" / "data"

CDS = "cdc-opioid-cds-r4"
MME = "cdc-opioid-mme-r4"

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

# ---------------------------------------------------------------------------------------------------------------
# Medications
# ---------------------------------------------------------------------------------------------------------------

# Spec §3 "Opioids (RxNorm)": the CDC value sets whose members are opioids.
OPIOID_VALUE_SETS = (
    "opioid-analgesics-with-ambulatory-misuse-potential",
    "non-synthetic-opioid-medications",
    "synthetic-opioid-medications",
    "buprenorphine-medications",
    "methadone-medications",
    "fentanyl-type-medications",
    "oxycodone-medications",
    "extended-release-opioid-with-ambulatory-misuse-potential",
)
# Spec §3: "`extended-release-opioid-with-ambulatory-misuse-potential` (long-acting)".
LONG_ACTING_VALUE_SET = "extended-release-opioid-with-ambulatory-misuse-potential"
BUPRENORPHINE_VALUE_SETS = ("buprenorphine-medications",)
METHADONE_VALUE_SETS = ("methadone-medications",)
NALOXONE_VALUE_SET = "naloxone-medications"
# Not named in spec §3 but the older union of the two sets above (terminology README); read so that a code only
# that expansion holds is not lost (counted as an opioid; buprenorphine/methadone by display). Today it adds
# nothing (checked in the notes).
EXTRA_MEDICATION_VALUE_SETS = ("buprenorphine-and-methadone-medications",)

# Spec §3: "also match by ingredient RxCUI (...)". Ingredient RxCUI -> ingredient name.
OPIOID_INGREDIENT_RXCUI = {
    "1819": "buprenorphine",
    "1841": "butorphanol",
    "2670": "codeine",
    "3423": "hydromorphone",
    "4337": "fentanyl",
    "5489": "hydrocodone",
    "6378": "levorphanol",
    "6754": "meperidine",
    "6813": "methadone",
    "7052": "morphine",
    "7238": "nalbuphine",
    "7676": "opium",
    "7804": "oxycodone",
    "7814": "oxymorphone",
    "8001": "pentazocine",
    "8785": "propoxyphene",
    "10689": "tramadol",
    "23088": "dihydrocodeine",
    "787390": "tapentadol",
    "73032": "remifentanil",  # spec §3 and data README: Synthea uses this ingredient code
    # Not in the spec list: levomethadyl acetate, found as an opioid ingredient in the CDC MME research
    # conversion-factor CodeSystem (cdc-opioid-mme-r4, "Levomethadyl acetate").
    "237005": "levomethadyl",
}
# Spec §3 names sufentanil, alfentanil, diphenoxylate and difenoxin without RxCUIs; none of the source files
# holds their ingredient codes, so they are matched by name only (see OPIOID_INGREDIENT_NAMES).

# Shared data README (synthetic-patients traps): Synthea uses brand (SBD) 1310197 (Vicodin), not in the value sets.
EXTRA_OPIOID_RXNORM = {"1310197": "hydrocodone"}

# Spec §1: Embeda-type morphine/naltrexone capsules are OPIOIDS, not naltrexone orders.
EMBEDA_RXNORM = ("863845", "863848", "863850", "863852", "863854", "863856")

# Spec §1 table: naltrexone products. Only the codes the spec gives: no other TTY (SBD, SCDF, ...) of these
# products appears in any source file, so none could be verified; brand names in displays/text cover them.
NALTREXONE_ORAL_RXNORM = ("1483744",)  # naltrexone hydrochloride 50 MG Oral Tablet (ReVia, Depade)
NALTREXONE_INJECTION_RXNORM = ("637213",)  # naltrexone 380 MG extended-release injectable suspension (Vivitrol)
NALTREXONE_COMBO_RXNORM = ("1551468",)  # bupropion 90 MG / naltrexone 8 MG ER oral tablet (Contrave)
NALTREXONE_INGREDIENT_RXNORM = ("7243",)  # spec §1: "commonly cited; confirm before relying on it alone"

# Spec §2 `naltrexone-allergy` (substance naltrexone, naloxone or nalmefene by code): ingredient RxCUIs from the
# task brief. The source files hold no ingredient-level concepts for these three, so they cannot be verified here.
NALOXONE_INGREDIENT_RXNORM = ("7242",)
NALMEFENE_INGREDIENT_RXNORM = ("7237",)

# Spec §5 `overdose-risk`: suggest naloxone nasal spray. The generic 4 mg Narcan SCD is named by concentration in
# RxNorm (40 MG/ML x 0.1 mL per actuation = 4 mg); the display is checked against naloxone-medications.json.
NALOXONE_NASAL_RXNORM = "1725059"
NALOXONE_NASAL_DISPLAY = "naloxone hydrochloride 40 MG/ML Nasal Spray"

# Ingredient names matched (case-insensitive, on word boundaries) in displays and free text.
# Spec §3 ingredient list plus "by ingredient name in the text"; spec §2 `opioid-active` names tramadol,
# tapentadol, codeine and hydrocodone cough products, diphenoxylate; §3 adds sufentanil, alfentanil, difenoxin.
# Further opioid agonists/partial agonists present in the CDC opioid value sets' displays (heroin, pholcodine,
# dextromoramide, dipipanone, meptazinol, benzhydrocodone) and common synonyms (pethidine = meperidine,
# diamorphine = heroin, dextropropoxyphene = propoxyphene, paregoric/laudanum = opium tincture).
OPIOID_INGREDIENT_NAMES = {
    "alfentanil": "alfentanil",
    "alphaprodine": "alphaprodine",
    "anileridine": "anileridine",
    "benzhydrocodone": "hydrocodone",
    "buprenorphine": "buprenorphine",
    "butorphanol": "butorphanol",
    "carfentanil": "fentanyl",
    "codeine": "codeine",
    "dextromoramide": "dextromoramide",
    "dextropropoxyphene": "propoxyphene",
    "dezocine": "dezocine",
    "diacetylmorphine": "heroin",
    "diamorphine": "heroin",
    "difenoxin": "difenoxin",
    "dihydrocodeine": "dihydrocodeine",
    "diphenoxylate": "diphenoxylate",
    "dipipanone": "dipipanone",
    "ethylmorphine": "ethylmorphine",
    "fentanyl": "fentanyl",
    "heroin": "heroin",
    "hydrocodone": "hydrocodone",
    "hydromorphone": "hydromorphone",
    "laudanum": "opium",
    "levomethadyl": "levomethadyl",
    "levorphanol": "levorphanol",
    "meperidine": "meperidine",
    "meptazinol": "meptazinol",
    "methadone": "methadone",
    "morphine": "morphine",
    "nalbuphine": "nalbuphine",
    "nicomorphine": "nicomorphine",
    "oliceridine": "oliceridine",
    "opium": "opium",
    "oxycodone": "oxycodone",
    "oxymorphone": "oxymorphone",
    "papaveretum": "opium",
    "paregoric": "opium",
    "pentazocine": "pentazocine",
    "pethidine": "meperidine",
    "phenazocine": "phenazocine",
    "pholcodine": "pholcodine",
    "piritramide": "piritramide",
    "propoxyphene": "propoxyphene",
    "remifentanil": "remifentanil",
    "sufentanil": "sufentanil",
    "tapentadol": "tapentadol",
    "tilidine": "tilidine",
    "tramadol": "tramadol",
}
# Opioid antagonists and the one non-opioid partner that decides a naltrexone product (spec §1).
OTHER_INGREDIENT_NAMES = {
    "naltrexone": "naltrexone",
    "naloxone": "naloxone",
    "nalmefene": "nalmefene",
    "bupropion": "bupropion",
}

# Brand (and common EHR shorthand) -> ingredients. Spec §3 ("Synthea uses brand (SBD) ... codes") and the task
# brief's examples (Vicodin, Percocet, OxyContin, Suboxone, Subutex, Dilaudid, Duragesic, Ultram, Nucynta, Lomotil);
# the rest are the brands in the CDC opioid value sets' displays plus other US brands of the same ingredients.
# Spec §1 gives ReVia, Depade, Vivitrol and Contrave.
# fmt: off
BRAND_NAMES: dict[str, tuple[str, ...]] = {
    # hydrocodone
    "anexsia": ("hydrocodone",), "apadaz": ("hydrocodone",), "flowtuss": ("hydrocodone",),
    "hycet": ("hydrocodone",), "hycodan": ("hydrocodone",), "hycofenix": ("hydrocodone",),
    "hydromet": ("hydrocodone",), "hysingla": ("hydrocodone",), "ibudone": ("hydrocodone",),
    "lorcet": ("hydrocodone",), "lortab": ("hydrocodone",), "maxidone": ("hydrocodone",),
    "norco": ("hydrocodone",), "obredon": ("hydrocodone",), "reprexain": ("hydrocodone",),
    "rezira": ("hydrocodone",), "tussicaps": ("hydrocodone",), "tussigon": ("hydrocodone",),
    "tussionex": ("hydrocodone",), "vantrela": ("hydrocodone",), "verdrocet": ("hydrocodone",),
    "vicodin": ("hydrocodone",), "vicoprofen": ("hydrocodone",), "vituz": ("hydrocodone",),
    "xodol": ("hydrocodone",), "xylon": ("hydrocodone",), "zamicet": ("hydrocodone",),
    "zohydro": ("hydrocodone",), "zutripro": ("hydrocodone",), "zydone": ("hydrocodone",),
    # oxycodone
    "endocet": ("oxycodone",), "endodan": ("oxycodone",), "nalocet": ("oxycodone",),
    "oxaydo": ("oxycodone",), "oxecta": ("oxycodone",), "oxycontin": ("oxycodone",),
    "oxyir": ("oxycodone",), "percocet": ("oxycodone",), "percodan": ("oxycodone",),
    "primlev": ("oxycodone",), "prolate": ("oxycodone",), "roxicet": ("oxycodone",),
    "roxicodone": ("oxycodone",), "roxybond": ("oxycodone",), "targiniq": ("oxycodone", "naloxone"),
    "troxyca": ("oxycodone", "naltrexone"), "tylox": ("oxycodone",), "xartemis": ("oxycodone",),
    "xtampza": ("oxycodone",),
    # morphine
    "arymo": ("morphine",), "avinza": ("morphine",), "duramorph": ("morphine",),
    "embeda": ("morphine", "naltrexone"), "infumorph": ("morphine",), "kadian": ("morphine",),
    "mitigo": ("morphine",), "morphabond": ("morphine",), "ms contin": ("morphine",),
    "msir": ("morphine",), "mso4": ("morphine",), "roxanol": ("morphine",),
    # hydromorphone, oxymorphone, meperidine, levorphanol, tapentadol, tramadol
    "dilaudid": ("hydromorphone",), "exalgo": ("hydromorphone",),
    "numorphan": ("oxymorphone",), "opana": ("oxymorphone",),
    "demerol": ("meperidine",), "meperitab": ("meperidine",),
    "levo-dromoran": ("levorphanol",),
    "nucynta": ("tapentadol",),
    "conzip": ("tramadol",), "qdolo": ("tramadol",), "rybix": ("tramadol",), "ryzolt": ("tramadol",),
    "seglentis": ("tramadol",), "ultracet": ("tramadol",), "ultram": ("tramadol",),
    # fentanyl family
    "abstral": ("fentanyl",), "actiq": ("fentanyl",), "duragesic": ("fentanyl",), "fentora": ("fentanyl",),
    "ionsys": ("fentanyl",), "lazanda": ("fentanyl",), "onsolis": ("fentanyl",), "sublimaze": ("fentanyl",),
    "subsys": ("fentanyl",), "alfenta": ("alfentanil",), "rapifen": ("alfentanil",),
    "dsuvia": ("sufentanil",), "sufenta": ("sufentanil",), "ultiva": ("remifentanil",),
    "olinvyk": ("oliceridine",),
    # methadone
    "diskets": ("methadone",), "dolophine": ("methadone",), "methadose": ("methadone",),
    # buprenorphine
    "belbuca": ("buprenorphine",), "brixadi": ("buprenorphine",), "buprenex": ("buprenorphine",),
    "butrans": ("buprenorphine",), "probuphine": ("buprenorphine",), "sublocade": ("buprenorphine",),
    "subutex": ("buprenorphine",),
    "bunavail": ("buprenorphine", "naloxone"), "cassipa": ("buprenorphine", "naloxone"),
    "suboxone": ("buprenorphine", "naloxone"), "zubsolv": ("buprenorphine", "naloxone"),
    # codeine and dihydrocodeine (incl. cough products: spec §2 `opioid-active`)
    "brontex": ("codeine",), "cheratussin ac": ("codeine",), "robitussin ac": ("codeine",),
    "tuxarin": ("codeine",), "tuzistra": ("codeine",), "tylenol #3": ("codeine",), "tylenol #4": ("codeine",),
    "tylenol 3": ("codeine",), "tylenol 4": ("codeine",), "tylenol with codeine": ("codeine",),
    "panlor": ("dihydrocodeine",), "synalgos-dc": ("dihydrocodeine",), "trezix": ("dihydrocodeine",),
    # mixed agonist-antagonists, propoxyphene
    "nubain": ("nalbuphine",), "stadol": ("butorphanol",), "talacen": ("pentazocine",),
    "talwin": ("pentazocine",), "darvocet": ("propoxyphene",), "darvon": ("propoxyphene",),
    # diphenoxylate / difenoxin (spec §3: opioids the value sets miss)
    "lomotil": ("diphenoxylate",), "lonox": ("diphenoxylate",), "motofen": ("difenoxin",),
    # antagonists
    "depade": ("naltrexone",), "revia": ("naltrexone",), "vivitrol": ("naltrexone",),
    "contrave": ("bupropion", "naltrexone"), "mysimba": ("bupropion", "naltrexone"),
    "evzio": ("naloxone",), "kloxxado": ("naloxone",), "narcan": ("naloxone",), "rextovy": ("naloxone",),
    "rivive": ("naloxone",), "zimhi": ("naloxone",),
    "opvee": ("nalmefene",), "revex": ("nalmefene",), "zurnai": ("nalmefene",),
}
# fmt: on

# Brands that only exist as extended-release / long-acting products (task brief: OpioidKind.LONG_ACTING for
# extended-release / long-acting opioids; spec §2 `opioid-recent`: 14 days for them).
# fmt: off
LONG_ACTING_BRANDS = (
    "arymo", "avinza", "belbuca", "brixadi", "butrans", "conzip", "duragesic", "embeda", "exalgo", "hysingla",
    "ionsys", "kadian", "morphabond", "ms contin", "oxycontin", "probuphine", "ryzolt", "sublocade", "targiniq",
    "troxyca", "vantrela", "xartemis", "xtampza", "zohydro",
)
# fmt: on
# Spec §1 table: the dose form each naltrexone brand stands for ("former brands ReVia, Depade"; Vivitrol is the
# injectable; Contrave, and its EU name Mysimba, the bupropion combination).
# fmt: off
NALTREXONE_BRAND_FORMS = {
    "revia": "oral", "depade": "oral", "vivitrol": "injection", "contrave": "combo", "mysimba": "combo",
}
# fmt: on
# Ingredients that are long-acting whatever the product: spec §2 `opioid-recent` (methadone, buprenorphine) and
# levomethadyl (LAAM, a longer-acting methadone congener).
LONG_ACTING_INGREDIENTS = ("buprenorphine", "methadone", "levomethadyl")

# RxNorm display patterns that mark an extended-release / long-acting product in the opioid value sets. Used at
# build time only, to catch value-set codes that the ER value set misses (e.g. Duragesic SBDs, codeine 12 HR).
RXNORM_ER_DISPLAY = re.compile(r"extended release|transdermal|\b\d+ HR\b", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------------------------
# Labs
# ---------------------------------------------------------------------------------------------------------------

# Spec §3 "Opioid urine screens (LOINC)": `opioid-urine-drug-screening` and the per-analyte sets.
URINE_VALUE_SETS = (
    "opioid-urine-drug-screening",
    "general-opiate-urine-drug-screening-tests",
    "opiate-specific-urine-drug-screening-tests",
    "heroin-urine-drug-screening-tests",
    "oxycodone-urine-drug-screening-tests",
    "fentanyl-type-urine-drug-screening-tests",
    "methadone-urine-drug-screening-tests",
    "buprenorphine-urine-drug-screening-tests",
    "synthetic-opioid-urine-drug-screening-tests",
)
# Value sets read only for better display names of the same LOINC codes (the per-analyte sets use short names).
URINE_DISPLAY_VALUE_SETS = ("all-urine-drug-screening-tests", "non-opioid-urine-drug-screening")

# Spec §3: REMOVE the naltrexone, 6-beta-naltrexol and naloxone tests (a patient on naltrexone tests positive).
# fmt: off
URINE_REMOVE_ANTAGONIST = (
    "12309-1", "18334-3", "19609-7", "19610-5", "19611-3", "19612-1", "19613-9", "72789-1", "72787-5",
    "72788-3", "78865-3", "79377-8", "82524-0", "82527-3", "42618-9", "92649-3", "77207-9", "78864-6",
    "78862-0", "78863-8", "89307-3",
)
# fmt: on
# Spec §3: ADD tramadol (these sit in `non-opioid-urine-drug-screening`).
# fmt: off
URINE_ADD_TRAMADOL = (
    "19710-3", "17718-8", "43219-5", "20561-7", "17719-6", "58404-5", "19712-9", "19713-7", "86454-6",
    "87760-5", "92904-2", "18338-4",
)
# fmt: on
# Not in the spec: pentazocine tests, which the CDC sets also file under `non-opioid-urine-drug-screening` (the
# same trap as tramadol). Pentazocine is an opioid in spec §3's ingredient list, so a positive test is a positive
# opioid screen. Checked against their displays at build time.
URINE_ADD_PENTAZOCINE = ("3917-2", "3918-0", "3919-8", "16219-8", "59951-4")
# Not in the spec: analytes in `opioid-urine-drug-screening` that are not opioids. Pentedrone and pentylone are
# synthetic cathinones (stimulants); papaverine is a non-opioid opium alkaloid that is also prescribed as a
# vasodilator. A positive result says nothing about opioids in the body, and would be a false stop.
URINE_REMOVE_NOT_OPIOID = {"86193-0": "pentedrone", "86197-1": "pentylone", "60126-0": "papaverine"}

# Spec §3 "Cut-off, ratio and Z-score codes carry no result: skip them." Found by display. Also skipped, for the
# same reason (no result value): "tested for" lists and "screen/confirm method [Identifier]" method names.
URINE_NO_RESULT_DISPLAY = (
    ("cutoff", re.compile(r"\bcut-?off\b|\bCtO\b", re.IGNORECASE)),
    ("ratio", re.compile(r"/\s*creat|\bratio\b", re.IGNORECASE)),
    ("z-score", re.compile(r"z-score", re.IGNORECASE)),
    ("tested-for list", re.compile(r"\btested for\b", re.IGNORECASE)),
    ("method name", re.compile(r"\b(screen|confirm) method \[identifier\]", re.IGNORECASE)),
)
NALTREXONE_OR_NALOXONE = re.compile(r"nal(trex|ox)", re.IGNORECASE)

# Analyte-key aliases for short or chemical names (applied after slugging).
ANALYTE_ALIASES = {
    "6mam": "6-mam",
    "6-monoacetylmorphine": "6-mam",
    "monoacetylmorphine": "6-mam",
    "acetylmorphine": "6-mam",
    "6mam-free": "6-mam-free",
    "6-monoacetylmorphine-free": "6-mam-free",
    "b3g": "buprenorphine-3-glucuronide",
    "n3g": "norbuprenorphine-3-glucuronide",
    "buprenorphine+nor": "buprenorphine+norbuprenorphine",
    "oxymorphone+noroxymorph": "oxymorphone+noroxymorphone",
    "diamorphine": "heroin",
    "narcotics+opioids": "opioids",
}

# Spec §3 "Liver" and §2 rules: the other lab groups (not in the value sets).
# fmt: off
LAB_CODES = {
    "alt": ("1742-6", "1744-2", "77144-4"),  # spec §3 Liver
    "ast": ("1920-8", "30239-8", "88112-8"),  # spec §3 Liver
    "bilirubin": ("1975-2",),  # spec §3 Liver
    "liver-panel": ("24325-3",),  # spec §3 Liver, §2 `liver-panel-missing`
    "hcg": ("2106-3", "2118-8", "2112-1", "2110-5", "80384-1", "80385-8"),  # spec §2 `pregnancy`
    "pregnancy-status": ("82810-3",),  # spec §2 `pregnancy`
    "lactation-status": ("63895-7",),  # spec §2 `lactation`
    "egfr": (  # spec §2 `renal-impairment`
        "98979-8", "62238-1", "77147-7", "48642-3", "48643-1", "33914-3", "50044-7", "88293-6", "88294-4",
    ),
}
# fmt: on
# Spec §5: "a LOINC opioid screen code" for the "Order a urine opioid screen" suggestion. 19295-5 is the first of
# spec §3's "Common screens", the generic opiates immunoassay that labs order as "opiates screen", and is in
# `general-opiate-urine-drug-screening-tests`; its display is read from the value set.
URINE_SCREEN_ORDER_LOINC = "19295-5"
# Spec §3 / §5: hepatic function panel.
HEPATIC_PANEL_LOINC = "24325-3"

# ---------------------------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------------------------

# ICD-10-CM codes and families from spec §2 (dot removed; a family "B15.x" is the prefix "B15"). A code matches
# the LONGEST listed prefix it starts with, so "F1123" (withdrawal) beats "F112" (use disorder).
# fmt: off
ICD10_PREFIXES: dict[str, str] = {
    # spec §2 `opioid-dependence-documented` (brief: F11.1x/F11.2x/F11.9x), minus withdrawal and remission below.
    # "F11" itself (category code, in opioid-misuse-disorders) also counts as a use disorder.
    "F11": "opioid-use-disorder",
    "F111": "opioid-use-disorder",
    "F112": "opioid-use-disorder",
    "F119": "opioid-use-disorder",
    # spec §2 `opioid-withdrawal`: F11.13, F11.23, F11.93 (and any deeper children)
    "F1113": "opioid-withdrawal",
    "F1123": "opioid-withdrawal",
    "F1193": "opioid-withdrawal",
    # WHO ICD-10 (system .../icd-10): F11.3 withdrawal state, F11.4 withdrawal state with delirium. These codes
    # do not exist in ICD-10-CM, so the entries cannot misfire there.
    "F113": "opioid-withdrawal",
    "F114": "opioid-withdrawal",
    # spec §2: in-remission codes never fire
    "F1111": "opioid-use-disorder-remission",
    "F1121": "opioid-use-disorder-remission",
    # spec §2 `hepatic-acute`
    "B15": "hepatic-acute", "B16": "hepatic-acute", "B17": "hepatic-acute", "K701": "hepatic-acute",
    "K704": "hepatic-acute", "K711": "hepatic-acute", "K712": "hepatic-acute", "K716": "hepatic-acute",
    "K720": "hepatic-acute", "K721": "hepatic-acute", "K729": "hepatic-acute",
    # spec §2 `liver-disease-chronic`
    "K703": "liver-chronic", "K74": "liver-chronic", "B18": "liver-chronic", "K73": "liver-chronic",
    "K754": "liver-chronic",
    # spec §2 `pregnancy`
    "Z331": "pregnancy", "Z34": "pregnancy", "O09": "pregnancy",
    # spec §2 `lactation`
    "Z391": "lactation",
    # spec §2 `renal-impairment`
    "N1832": "renal-impairment", "N184": "renal-impairment", "N185": "renal-impairment",
    "N186": "renal-impairment", "N17": "renal-impairment", "N19": "renal-impairment",
    # spec §2 `mental-health-monitoring`
    "R45851": "suicidal", "T1491": "suicidal",
    "F32": "depression", "F33": "depression", "F341": "depression", "F530": "depression",
}
# fmt: on

# SNOMED CT codes listed in spec §2.
# fmt: off
SNOMED_CODES: dict[str, tuple[str, ...]] = {
    "opioid-withdrawal": ("87132004", "703846009"),  # spec §2 `opioid-withdrawal`
    "opioid-use-disorder": ("75544000", "1081000119105"),  # spec §2 `opioid-dependence-documented`
    "opioid-use-disorder-remission": ("191821007",),  # spec §2: in-remission never fires
    "hepatic-acute": (  # spec §2 `hepatic-acute`
        "37871000", "57412004", "4896000", "235876009", "235875008", "197270009", "59927004", "197268000",
        "235866006", "235867002",
    ),
    "liver-chronic": ("19943007", "420054005", "328383001", "128302006", "61977001"),  # spec §2
    "pregnancy": ("77386006", "72892002", "47200007"),  # spec §2 `pregnancy`
    "lactation": ("866041003", "69840006", "169745008", "225604004"),  # spec §2 `lactation`
    "renal-impairment": ("700379002", "431857002", "433146000", "46177005", "236435004", "14669001"),  # spec §2
    "depression": ("370143000", "36923009", "66344007"),  # spec §2 `mental-health-monitoring`
}
# fmt: on

# SNOMED codes from `conditions-documenting-substance-misuse` (not named in the spec) whose display is opioid
# misuse or a positive naloxone challenge; checked against their displays at build time.
SUBSTANCE_MISUSE_EXTRA_SNOMED = {
    "428819003": "opioid-use-disorder",  # Opiate misuse (finding)
    "429512006": "opioid-use-disorder",  # Methadone misuse (finding)
    "1304040007": "opioid-use-disorder",  # Harmful pattern of use of intravenous heroin
    "1336060003": "opioid-use-disorder",  # Episode of harmful use of intravenous diamorphine
    # Spec §2 `naloxone challenge`: the labels contraindicate naltrexone after a failed naloxone challenge.
    "1264554000": "opioid-withdrawal",  # Signs of opioid withdrawal on naloxone challenge test (finding)
}

# Not in the spec or the value sets: an older SNOMED concept that the CDC IG's own request examples use
# (shared data opioid-cds-requests/OpioidCDSREC12PatientView/request-example-rec-12-patient-view-*.json,
# "Combined opioid with other drug dependence"); the current value set holds its successor 1255013006.
REQUEST_EXAMPLE_SNOMED = {"191865004": "opioid-use-disorder"}

# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


class BuildError(Exception):
    pass


def natural_key(code: str) -> tuple[Any, ...]:
    """Sort "19295-5" < "100437-3" and "7052" < "10689": compare digit runs as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|\D+", code))


def sorted_codes(codes: Iterable[str]) -> list[str]:
    return sorted(set(codes), key=natural_key)


class Source:
    """The source folder: value sets by id, with a record of every file read for the header."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.read: dict[str, dict[str, Any]] = {}
        readme = root / "README.md"
        if not readme.is_file():
            raise BuildError(f"{readme} not found: pass the shared terminology folder as SOURCE_DIR")
        self.readme_text = readme.read_text(encoding="utf-8")

    def _load(self, rel: str) -> dict[str, Any]:
        path = self.root / rel
        if not path.is_file():
            raise BuildError(f"source file missing: {path}")
        raw = path.read_bytes()
        data: dict[str, Any] = json.loads(raw)
        expansion = data.get("expansion") or {}
        self.read[rel] = {
            "path": rel,
            "url": data.get("url"),
            "expansion_timestamp": expansion.get("timestamp"),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
        return data

    def value_set(self, vs_id: str) -> list[dict[str, Any]]:
        """Expansion members (system, code, display) of cdc-opioid-cds-r4/<vs_id>.json, nested contains flattened."""
        data = self._load(f"{CDS}/{vs_id}.json")
        out: list[dict[str, Any]] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for c in items:
                if c.get("code"):
                    out.append({"system": c.get("system"), "code": c["code"].strip(), "display": c.get("display")})
                walk(c.get("contains", []))

        walk((data.get("expansion") or {}).get("contains", []))
        return out

    def code_system_concepts(self, rel: str) -> dict[str, str]:
        data = self._load(rel)
        out: dict[str, str] = {}

        def walk(items: list[dict[str, Any]]) -> None:
            for c in items:
                out[c["code"]] = c.get("display", "")
                walk(c.get("concept", []))

        walk(data.get("concept", []))
        return out

    def commit(self, folder: str) -> tuple[str, str]:
        """(repository URL, snapshot commit) of a README section "## `<folder>/`"."""
        m = re.search(rf"^## `{re.escape(folder)}/`.*?(?=^## |\Z)", self.readme_text, re.MULTILINE | re.DOTALL)
        if not m:
            raise BuildError(f"README has no section for {folder}/")
        section = m.group(0)
        repo = re.search(r"Source repository:\s*(\S+)", section)
        commit = re.search(r"Snapshot commit:\s*`([0-9a-f]{40})`", section)
        if not repo or not commit:
            raise BuildError(f"README section {folder}/ has no source repository / snapshot commit")
        return repo.group(1), commit.group(1)

    def header(self, files: Iterable[str], notes: list[str]) -> dict[str, Any]:
        folders = sorted({f.split("/", 1)[0] for f in files})
        return {
            "generated_by": "scripts/build_terminology.py",
            "source_readme": "terminology/README.md (shared data folder)",
            "sources": [{"folder": f, "repository": self.commit(f)[0], "commit": self.commit(f)[1]} for f in folders],
            "files": [self.read[f] for f in sorted(files)],
            "notes": notes,
        }


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BuildError(message)


def name_key(name: str) -> str:
    """The lookup form of a matched name: lower case, runs of separators collapsed to one space."""
    return re.sub(r"[^a-z0-9#]+", " ", name.lower()).strip()


# ---------------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------------


def find_ingredients(display: str) -> set[str]:
    """Ingredient keys named in an RxNorm display (build-time twin of the runtime matcher)."""
    names = {**OPIOID_INGREDIENT_NAMES, **OTHER_INGREDIENT_NAMES}
    low = display.lower()
    found = {names[n] for n in names if re.search(rf"(?<![a-z0-9]){re.escape(n)}(?![a-z0-9])", low)}
    for brand, ingredients in BRAND_NAMES.items():
        pattern = r"[\s\-]+".join(re.escape(p) for p in re.split(r"[\s\-]+", brand))
        if re.search(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", low):
            found.update(ingredients)
    return found


def build_medications(src: Source) -> dict[str, Any]:
    notes: list[str] = []
    files: list[str] = []
    members: dict[str, set[str]] = {}
    displays: dict[str, str] = {}

    def read(vs_id: str) -> None:
        files.append(f"{CDS}/{vs_id}.json")
        for c in src.value_set(vs_id):
            require(c["system"] == RXNORM, f"{vs_id}: non-RxNorm member {c}")
            members.setdefault(c["code"], set()).add(vs_id)
            if c["display"]:
                prev = displays.get(c["code"])
                require(
                    prev in (None, c["display"]), f"RxNorm {c['code']}: displays differ: {prev!r} / {c['display']!r}"
                )
                displays[c["code"]] = c["display"]

    for vs_id in (*OPIOID_VALUE_SETS, *EXTRA_MEDICATION_VALUE_SETS, NALOXONE_VALUE_SET):
        read(vs_id)

    groups: dict[str, set[str]] = {
        g: set() for g in ("opioid", "long-acting", "buprenorphine", "methadone", "naloxone", "antagonist-combo")
    }
    opioid_codes = {c for c, vs in members.items() if vs & set(OPIOID_VALUE_SETS + EXTRA_MEDICATION_VALUE_SETS)}
    er_by_display: list[str] = []
    for code in sorted_codes(members):
        vs = members[code]
        display = displays.get(code, "")
        ingredients = find_ingredients(display)
        opioid_names = ingredients & set(OPIOID_INGREDIENT_NAMES.values())
        is_opioid = code in opioid_codes or bool(opioid_names)  # e.g. pentazocine/naloxone from the naloxone set
        if is_opioid:
            groups["opioid"].add(code)
            if LONG_ACTING_VALUE_SET in vs:
                groups["long-acting"].add(code)
            elif RXNORM_ER_DISPLAY.search(display):
                groups["long-acting"].add(code)
                er_by_display.append(f"{code} {display}")
        if vs & set(BUPRENORPHINE_VALUE_SETS) or "buprenorphine" in ingredients:
            groups["buprenorphine"].add(code)
        if vs & set(METHADONE_VALUE_SETS) or "methadone" in ingredients:
            groups["methadone"].add(code)
        if NALOXONE_VALUE_SET in vs or "naloxone" in ingredients:
            groups["naloxone"].add(code)
        if "naltrexone" in ingredients:
            require(is_opioid, f"{code} {display}: naltrexone product inside an opioid value set is not an opioid")
            groups["antagonist-combo"].add(code)
        for vs_group, vs_ids in (("buprenorphine", BUPRENORPHINE_VALUE_SETS), ("methadone", METHADONE_VALUE_SETS)):
            if vs & set(vs_ids):
                require(vs_group in ingredients, f"{code} {display}: in a {vs_group} set, display does not name it")

    require(set(EMBEDA_RXNORM) == groups["antagonist-combo"], "Embeda codes in the value sets differ from spec §1")
    bm_only = {c for c, vs in members.items() if vs == {"buprenorphine-and-methadone-medications"}}
    notes.append(
        f"buprenorphine-and-methadone-medications adds {len(bm_only)} code(s) not in the newer buprenorphine/"
        "methadone sets"
    )
    notes.append(
        "long-acting = extended-release-opioid-with-ambulatory-misuse-potential + methadone + buprenorphine + "
        f"{len(er_by_display)} opioid value-set code(s) whose RxNorm display says Extended Release / Transdermal / "
        f"'<n> HR' but that the ER set misses: {'; '.join(er_by_display)}"
    )

    # Ingredient RxCUIs (spec §3) and Synthea brand (data README): verify names against the MME CodeSystems.
    mme: dict[str, str] = {}
    for rel in (
        f"{MME}/codesystem-CDCMMEResearchConversionFactors.json",
        f"{MME}/codesystem-cfct-example-CDCMMEClinicalConversionFactors.json",
    ):
        files.append(rel)
        mme.update(src.code_system_concepts(rel))
    verified, unverified = [], []
    for code, name in sorted(OPIOID_INGREDIENT_RXCUI.items(), key=lambda kv: natural_key(kv[0])):
        if code in mme:
            shown = mme[code].lower()
            # the research CodeSystem spells levorphanol "Loverphanol tartrate"
            ok = shown.startswith(name) or (name == "levorphanol" and "phanol" in shown)
            require(ok, f"ingredient RxCUI {code}: spec says {name}, MME CodeSystem says {mme[code]!r}")
            verified.append(f"{code} {name}")
        else:
            unverified.append(f"{code} {name}")
    notes.append(f"ingredient RxCUIs verified by display in the cdc-opioid-mme-r4 CodeSystems: {', '.join(verified)}")
    notes.append(f"ingredient RxCUIs taken from the spec without a source file to verify them: {', '.join(unverified)}")
    notes.append(
        "naltrexone 7243, naloxone 7242, nalmefene 7237 (ingredients) and the naltrexone products 1483744, 637213, "
        "1551468 are not in any source file (the value sets hold no antagonist ingredients or naltrexone "
        "products): taken from the spec/brief unverified; names in displays and text back them up"
    )

    ingredient_groups: dict[str, list[str]] = {}
    for ing in sorted(set(OPIOID_INGREDIENT_NAMES.values())):
        g = ["opioid"]
        if ing in ("buprenorphine", "methadone"):
            g.append(ing)
        ingredient_groups[ing] = sorted(g)
    for ing in ("naltrexone", "naloxone", "nalmefene"):
        ingredient_groups[ing] = [ing]
    ingredient_groups["bupropion"] = []

    opioid_rxcui = {**OPIOID_INGREDIENT_RXCUI, **EXTRA_OPIOID_RXNORM}
    for code, ing in opioid_rxcui.items():
        require(ing in ingredient_groups, f"unknown ingredient {ing}")
        groups["opioid"].add(code)
        if ing in LONG_ACTING_INGREDIENTS:
            groups["long-acting"].add(code)
        if ing in ("buprenorphine", "methadone"):
            groups[ing].add(code)

    require(displays.get(NALOXONE_NASAL_RXNORM) == NALOXONE_NASAL_DISPLAY, "naloxone nasal spray display changed")
    naloxone_only = sorted_codes(c for c in groups["naloxone"] if c not in groups["opioid"])
    notes.append(
        f"naloxone-medications: {len(naloxone_only)} naloxone-only products; the other "
        f"{len(groups['naloxone']) - len(naloxone_only)} (buprenorphine/naloxone, pentazocine/naloxone) are opioids"
    )

    names: dict[str, list[str]] = {}
    for n, ing in {**OPIOID_INGREDIENT_NAMES, **OTHER_INGREDIENT_NAMES}.items():
        names[name_key(n)] = [ing]
    for brand, ings in BRAND_NAMES.items():
        key = name_key(brand)
        require(key not in names, f"brand {brand} collides with an ingredient name")
        require(all(i in ingredient_groups for i in ings), f"brand {brand}: unknown ingredient")
        names[key] = sorted(ings)
    for b in (*LONG_ACTING_BRANDS, *NALTREXONE_BRAND_FORMS):
        require(name_key(b) in names, f"brand {b} missing from BRAND_NAMES")

    # naloxone_only must stay allergy-only naloxone products; all must be named by the runtime matcher too
    for code in groups["opioid"]:
        d = displays.get(code)
        if d:
            require(
                bool(find_ingredients(d) & set(OPIOID_INGREDIENT_NAMES.values())),
                f"{code} {d}: opioid code whose display names no known opioid ingredient",
            )

    rxnorm = {g: sorted_codes(c) for g, c in groups.items()}
    rxnorm["naltrexone"] = sorted_codes(
        NALTREXONE_ORAL_RXNORM + NALTREXONE_INJECTION_RXNORM + NALTREXONE_COMBO_RXNORM + NALTREXONE_INGREDIENT_RXNORM
    )
    rxnorm["naloxone"] = sorted_codes([*rxnorm["naloxone"], *NALOXONE_INGREDIENT_RXNORM])
    rxnorm["nalmefene"] = sorted_codes(NALMEFENE_INGREDIENT_RXNORM)

    notes.append("counts: " + ", ".join(f"{g} {len(c)}" for g, c in sorted(rxnorm.items())))
    return {
        "header": src.header(files, notes),
        "rxnorm": rxnorm,
        "naltrexone_products": {
            "oral": sorted_codes(NALTREXONE_ORAL_RXNORM),
            "injection": sorted_codes(NALTREXONE_INJECTION_RXNORM),
            "combo": sorted_codes(NALTREXONE_COMBO_RXNORM),
            "ingredient": sorted_codes(NALTREXONE_INGREDIENT_RXNORM),
        },
        "allergy_rxnorm": {
            "naltrexone": sorted_codes(
                NALTREXONE_ORAL_RXNORM
                + NALTREXONE_INJECTION_RXNORM
                + NALTREXONE_COMBO_RXNORM
                + NALTREXONE_INGREDIENT_RXNORM
            ),
            "naloxone": sorted_codes([*naloxone_only, *NALOXONE_INGREDIENT_RXNORM]),
            "nalmefene": sorted_codes(NALMEFENE_INGREDIENT_RXNORM),
        },
        "ingredients": ingredient_groups,
        "names": dict(sorted(names.items())),
        "long_acting_names": sorted({name_key(b) for b in LONG_ACTING_BRANDS}),
        "naltrexone_brand_forms": {name_key(b): f for b, f in sorted(NALTREXONE_BRAND_FORMS.items())},
        "long_acting_ingredients": sorted(LONG_ACTING_INGREDIENTS),
        "suggest": {
            "naloxone_nasal_spray": {"system": RXNORM, "code": NALOXONE_NASAL_RXNORM, "display": NALOXONE_NASAL_DISPLAY}
        },
    }


def analyte_key(display: str) -> str:
    """A stable key for the substance a urine test measures, from its LOINC display.

    Method (screen/confirm), property (presence/mass/moles) and scale are dropped, so a later confirmatory
    result replaces an earlier screen of the same analyte; parent drug, free drug, metabolites and combined
    analytes keep separate keys.
    """
    s = re.sub(r"^deprecated\s+", "", display.strip(), flags=re.IGNORECASE)
    cut = re.search(
        r"\s*(\[|/\s*creat|\bcut-?off\b|\bcto\b|\btested for\b|\b(confirm|screen) method\b|\bpositive\b"
        r"|\bpanel\b|\bpnl\b|\bur\b|\b24h\b|\bz-score\b|\badj\b|\bin urine\b|--)",
        s,
        re.IGNORECASE,
    )
    if cut:
        s = s[: cut.start()]
    paren = re.search(r"\(([^)]+)\)\s*$", s)
    if paren:  # "2-Ethylidene-...-pyrrolidine (EDDP)" -> "EDDP", "6-Monoacetylmorphine (6-MAM)" -> "6-MAM"
        s = paren.group(1)
    s = s.lower()
    s = re.sub(r"\s+and\s+", "+", s)
    s = re.sub(r"\s*\+\s*", "+", s)
    s = re.sub(r"[\s.]+", "-", s.strip())
    s = re.sub(r"-{2,}", "-", s).strip("-")
    s = ANALYTE_ALIASES.get(s, s)
    require(bool(re.fullmatch(r"[a-z0-9][a-z0-9+,-]*", s)), f"bad analyte key {s!r} from {display!r}")
    return s


def build_labs(src: Source) -> dict[str, Any]:
    notes: list[str] = []
    files: list[str] = []
    displays: dict[str, set[str]] = {}
    urine: set[str] = set()
    for vs in URINE_VALUE_SETS + URINE_DISPLAY_VALUE_SETS:
        files.append(f"{CDS}/{vs}.json")
        for m in src.value_set(vs):
            require(m["system"] == LOINC, f"{vs}: non-LOINC member {m}")
            if m["display"]:
                displays.setdefault(m["code"], set()).add(m["display"])
            if vs in URINE_VALUE_SETS:
                urine.add(m["code"])
    base = len(urine)

    excluded: dict[str, str] = {}
    missing = [c for c in URINE_REMOVE_ANTAGONIST if c not in urine]
    require(not missing, f"spec §3 naltrexone/naloxone tests not in the value sets: {missing}")
    for c in URINE_REMOVE_ANTAGONIST:
        excluded[c] = "naltrexone/naloxone test (spec §3)"
    for c, name in URINE_REMOVE_NOT_OPIOID.items():
        require(c in urine and any(name in d.lower() for d in displays[c]), f"{c} is not {name}")
        excluded[c] = f"not an opioid ({name})"
    for c in URINE_ADD_TRAMADOL:
        require(any("tramadol" in d.lower() for d in displays.get(c, ())), f"{c} is not a tramadol test")
    for c in URINE_ADD_PENTAZOCINE:
        require(any("pentazocine" in d.lower() for d in displays.get(c, ())), f"{c} is not a pentazocine test")
    urine |= set(URINE_ADD_TRAMADOL) | set(URINE_ADD_PENTAZOCINE)

    reasons: dict[str, int] = {}
    for c in sorted_codes(urine):
        if c in excluded:
            continue
        for reason, pattern in URINE_NO_RESULT_DISPLAY:
            if any(pattern.search(d) for d in displays.get(c, ())):
                spec = " (spec §3)" if reason in ("cutoff", "ratio", "z-score") else ""
                excluded[c] = f"no result value: {reason}{spec}"
                reasons[reason] = reasons.get(reason, 0) + 1
                break
    kept = sorted_codes(c for c in urine if c not in excluded)
    leaked = [c for c in kept if any(NALTREXONE_OR_NALOXONE.search(d) for d in displays.get(c, ()))]
    require(not leaked, f"naltrexone/naloxone urine tests survive the filters: {leaked}")
    no_display = [c for c in kept if not displays.get(c)]
    require(not no_display, f"urine codes without a display: {no_display}")

    analytes = {}
    for c in kept:
        best = max(displays[c], key=lambda d: (len(d), d))  # the long LOINC name parses best
        analytes[c] = analyte_key(best)

    for group, codes in LAB_CODES.items():
        clash = set(codes) & set(kept)
        require(not clash, f"{group} codes clash with urine codes: {clash}")
    order_display = displays.get(URINE_SCREEN_ORDER_LOINC)
    require(bool(order_display) and URINE_SCREEN_ORDER_LOINC in kept, "urine screen order code not a kept urine code")
    order_display_str = max(order_display or {""}, key=lambda d: (len(d), d))

    notes.append(
        f"urine-opioid: {base} codes in opioid-urine-drug-screening + the per-analyte sets; "
        f"+{len(URINE_ADD_TRAMADOL)} tramadol (spec §3) +{len(URINE_ADD_PENTAZOCINE)} pentazocine (not in spec: "
        "filed under non-opioid like tramadol); "
        f"-{len(URINE_REMOVE_ANTAGONIST)} naltrexone/naltrexol/naloxone (spec §3); "
        f"-{len(URINE_REMOVE_NOT_OPIOID)} non-opioid analytes (pentedrone, pentylone, papaverine); "
        f"-{sum(reasons.values())} without a result value by display ("
        + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        + f"); = {len(kept)} kept, {len(set(analytes.values()))} analyte keys"
    )
    notes.append("other lab groups are LOINC codes listed in the spec (§2, §3), not value-set members")

    loinc = {"urine-opioid": kept, **{g: sorted_codes(c) for g, c in LAB_CODES.items()}}
    notes.append("counts: " + ", ".join(f"{g} {len(c)}" for g, c in sorted(loinc.items())))
    return {
        "header": src.header(files, notes),
        "loinc": dict(sorted(loinc.items())),
        "urine_analyte": {c: analytes[c] for c in kept},
        "urine_excluded": {c: excluded[c] for c in sorted_codes(excluded)},
        "suggest": {
            "urine_screen": {"system": LOINC, "code": URINE_SCREEN_ORDER_LOINC, "display": order_display_str},
            "hepatic_panel": {"system": LOINC, "code": HEPATIC_PANEL_LOINC},
        },
    }


def build_conditions(src: Source) -> dict[str, Any]:
    notes: list[str] = []
    files = [f"{CDS}/opioid-misuse-disorders.json", f"{CDS}/conditions-documenting-substance-misuse.json"]
    misuse = src.value_set("opioid-misuse-disorders")
    substance = {c["code"]: c for c in src.value_set("conditions-documenting-substance-misuse")}

    snomed: dict[str, set[str]] = {g: set(c) for g, c in SNOMED_CODES.items()}
    decided: dict[str, list[str]] = {}
    icd_seen = 0
    for m in misuse:
        d = (m["display"] or "").lower()
        if m["system"] == ICD10CM:
            icd_seen += 1
            require(m["code"].startswith("F11"), f"unexpected ICD code {m['code']}")
            continue
        require(m["system"] == SNOMED, f"unexpected system {m['system']}")
        if "poisoning" in d or "overdose" in d or "intoxication" in d:
            group = None  # poisoning/overdose/intoxication: an acute event, not a use disorder
        elif "remission" in d:
            group = "opioid-use-disorder-remission"
        elif "withdrawal" in d:
            group = "opioid-withdrawal"
        elif "dependence" in d or "abuse" in d:
            group = "opioid-use-disorder"  # incl. "opioid-induced mood disorder due to opioid abuse/dependence"
        elif "narcotic drug user" in d:
            group = "opioid-use-disorder"  # current narcotic use: warning only, asks to confirm detox
        else:
            group = None  # e.g. "Mood disorder caused by opioid": not itself a use disorder
        decided.setdefault(group or "not used", []).append(m["code"])
        if group:
            snomed[group].add(m["code"])
    for code, group in SUBSTANCE_MISUSE_EXTRA_SNOMED.items():
        require(code in substance, f"{code} not in conditions-documenting-substance-misuse")
        snomed[group].add(code)
    for code, group in REQUEST_EXAMPLE_SNOMED.items():
        snomed[group].add(code)

    # every SNOMED code sits in exactly one group
    seen: dict[str, str] = {}
    for g, codes in snomed.items():
        for c in codes:
            require(c not in seen, f"SNOMED {c} in both {seen.get(c)} and {g}")
            seen[c] = g
    # every ICD-10-CM code of the value set resolves through the prefixes
    for m in misuse:
        if m["system"] == ICD10CM:
            require(longest_prefix(m["code"].replace(".", "")) is not None, f"{m['code']} unmatched")

    notes.append(
        f"opioid-misuse-disorders: {icd_seen} ICD-10-CM codes all resolve through the F11 prefixes; SNOMED decided "
        "by display: "
        + "; ".join(f"{g} {len(v)}" for g, v in sorted(decided.items()))
        + " (not used = poisoning, overdose, intoxication, opioid-caused mood disorder without abuse/dependence)"
    )
    notes.append(
        "conditions-documenting-substance-misuse adds SNOMED "
        + ", ".join(f"{c} ({substance[c]['display']}) -> {g}" for c, g in SUBSTANCE_MISUSE_EXTRA_SNOMED.items())
    )
    notes.append(
        "CDC IG request examples add SNOMED "
        + ", ".join(f"{c} -> {g}" for c, g in REQUEST_EXAMPLE_SNOMED.items())
        + " (Combined opioid with other drug dependence, predecessor of 1255013006)"
    )
    notes.append(
        "ICD-10 codes are matched without the dot, by the LONGEST listed prefix (F1123 withdrawal beats F112 use "
        "disorder); a listed code also matches its children (e.g. T14.91XA)"
    )
    out_snomed = {g: sorted_codes(c) for g, c in sorted(snomed.items())}
    notes.append(
        "counts: ICD-10 prefixes "
        + str(len(ICD10_PREFIXES))
        + ", SNOMED "
        + ", ".join(f"{g} {len(c)}" for g, c in out_snomed.items())
    )
    return {
        "header": src.header(files, notes),
        "icd10_prefixes": dict(sorted(ICD10_PREFIXES.items())),
        "snomed": out_snomed,
    }


def longest_prefix(code: str) -> str | None:
    for n in range(len(code), 2, -1):
        if code[:n] in ICD10_PREFIXES:
            return ICD10_PREFIXES[code[:n]]
    return None


def dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def build(source: Path, out: Path) -> dict[str, Path]:
    src = Source(source)
    outputs = {
        "medications.json": build_medications(src),
        "labs.json": build_labs(src),
        "conditions.json": build_conditions(src),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, obj in outputs.items():
        path = out / name
        path.write_text(dump(obj), encoding="utf-8", newline="\n")
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE, help="shared terminology folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    try:
        written = build(args.source.resolve(), args.out)
    except BuildError as exc:
        print(f"build_terminology: {exc}", file=sys.stderr)
        return 1
    for path in written.values():
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
