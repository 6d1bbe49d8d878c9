"""Terminology lookups (cds_service.terminology) and the reproducibility of scripts/build_terminology.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service import terminology as t
from cds_service.domain import Coding, OpioidKind, Product

REPO = Path(__file__).resolve().parent.parent
SHARED_TERMINOLOGY = REPO.parent / "shared" / "data" / "terminology"
VALUE_SETS = SHARED_TERMINOLOGY / "cdc-opioid-cds-r4"
DATA = REPO / "cds_service" / "terminology" / "data"

RX = t.RXNORM_SYSTEM
LN = t.LOINC_SYSTEM
SCT = t.SNOMED_SYSTEM
ICD = t.ICD10CM_SYSTEM
LOCAL = "urn:oid:1.2.3.4.5"  # a site's local drug dictionary

LONG = OpioidKind.LONG_ACTING
SHORT = OpioidKind.SHORT_ACTING

needs_shared = pytest.mark.skipif(
    not VALUE_SETS.is_dir(), reason=f"shared terminology data not present at {SHARED_TERMINOLOGY}"
)


def rx(code: str, display: str | None = None) -> Coding:
    return Coding(RX, code, display)


# -- medications --------------------------------------------------------------------------------------------------

MEDICATION_CASES = [
    # (id, codings, text, groups, kind)
    # spec §3 ingredient RxCUIs, code only
    *[
        (f"ingredient-{code}", [rx(code)], None, {"opioid", *extra}, kind)
        for code, extra, kind in [
            ("1819", {"buprenorphine"}, LONG), ("1841", set(), SHORT), ("2670", set(), SHORT),
            ("3423", set(), SHORT), ("4337", set(), SHORT), ("5489", set(), SHORT), ("6378", set(), SHORT),
            ("6754", set(), SHORT), ("6813", {"methadone"}, LONG), ("7052", set(), SHORT), ("7238", set(), SHORT),
            ("7676", set(), SHORT), ("7804", set(), SHORT), ("7814", set(), SHORT), ("8001", set(), SHORT),
            ("8785", set(), SHORT), ("10689", set(), SHORT), ("23088", set(), SHORT), ("787390", set(), SHORT),
            ("73032", set(), SHORT),
        ]
    ],
    # Synthea codes not in the CDC sets (data README)
    ("synthea-vicodin-sbd", [rx("1310197")], None, {"opioid"}, SHORT),
    ("synthea-remifentanil", [rx("73032", "Remifentanil")], None, {"opioid"}, SHORT),
    ("synthea-apap-hydrocodone", [rx("856980", "Acetaminophen/Hydrocodone")], None, {"opioid"}, SHORT),
    ("synthea-meperidine", [rx("861467")], None, {"opioid"}, SHORT),
    # value-set clinical drugs
    ("oxycodone-ir", [rx("1049621")], None, {"opioid"}, SHORT),
    ("oxycodone-er-12hr", [rx("1049502")], None, {"opioid"}, LONG),
    ("methadone-tablet", [rx("864706")], None, {"opioid", "methadone"}, LONG),
    ("fentanyl-patch-scd", [rx("245134")], None, {"opioid"}, LONG),
    ("duragesic-sbd-missing-from-er-set", [rx("261184")], None, {"opioid"}, LONG),
    ("butrans", [rx("904874")], None, {"opioid", "buprenorphine"}, LONG),
    ("tramadol-ir", [rx("835603")], None, {"opioid"}, SHORT),
    ("tramadol-ir-ultram", [rx("835605")], None, {"opioid"}, SHORT),
    ("tramadol-er-in-cdc-er-set", [rx("849331")], None, {"opioid"}, LONG),
    ("codeine-cough-12hr", [rx("1652087")], None, {"opioid"}, LONG),
    ("pentazocine-naloxone", [rx("312289")], None, {"opioid", "naloxone"}, SHORT),
    # buprenorphine/naloxone is an opioid, long-acting
    ("bup-naloxone-film", [rx("1010600")], None, {"opioid", "buprenorphine", "naloxone"}, LONG),
    ("bup-naloxone-suboxone", [rx("1010603")], None, {"opioid", "buprenorphine", "naloxone"}, LONG),
    ("suboxone-text", [], "Suboxone 8 mg-2 mg SL film", {"opioid", "buprenorphine", "naloxone"}, LONG),
    # naloxone alone is not an opioid
    ("naloxone-nasal", [rx("1725059")], None, {"naloxone"}, None),
    ("naloxone-ingredient", [rx("7242")], None, {"naloxone"}, None),
    ("narcan-text", [], "Narcan 4 mg nasal spray", {"naloxone"}, None),
    ("nalmefene", [rx("7237")], None, {"nalmefene"}, None),
    # Embeda-type morphine/naltrexone: an opioid, not naltrexone
    *[(f"embeda-{c}", [rx(c)], None, {"opioid"}, LONG) for c in ("863845", "863848", "863850", "863852", "863854")],
    ("embeda-863856", [rx("863856")], None, {"opioid"}, LONG),
    ("embeda-text", [], "morphine sulfate 30 mg / naltrexone 1.2 mg ER capsule", {"opioid"}, LONG),
    ("embeda-brand", [], "Embeda 20-0.8", {"opioid"}, LONG),
    ("embeda-code-with-naltrexone-text", [rx("863848")], "naltrexone", {"opioid"}, LONG),
    # naltrexone products
    ("naltrexone-oral", [rx("1483744")], None, {"naltrexone"}, None),
    ("naltrexone-injection", [rx("637213")], None, {"naltrexone"}, None),
    ("naltrexone-combo", [rx("1551468")], None, {"naltrexone"}, None),
    ("naltrexone-ingredient", [rx("7243")], None, {"naltrexone"}, None),
    ("vivitrol-text", [], "Vivitrol 380 mg", {"naltrexone"}, None),
    ("methylnaltrexone-is-not-naltrexone", [], "methylnaltrexone 12 mg/0.6 mL", set(), None),
    # names in text / displays (case-insensitive, word boundaries)
    ("local-code-text-only", [Coding(LOCAL, "12345")], "HYDROcodone-acetaminophen 5-325 mg tab", {"opioid"}, SHORT),
    ("local-code-display-only", [Coding(LOCAL, "OXY10ER", "OxyContin 10 mg")], None, {"opioid"}, LONG),
    ("no-system-display", [Coding(None, None, "Percocet 5/325")], None, {"opioid"}, SHORT),
    ("vicodin", [], "Vicodin", {"opioid"}, SHORT),
    ("percocet", [], "PERCOCET", {"opioid"}, SHORT),
    ("oxycontin", [], "oxycontin 20mg", {"opioid"}, LONG),
    ("subutex", [], "Subutex 8 mg", {"opioid", "buprenorphine"}, LONG),
    ("dilaudid", [], "Dilaudid 2 mg", {"opioid"}, SHORT),
    ("duragesic", [], "Duragesic 25 mcg/hr", {"opioid"}, LONG),
    ("ultram", [], "Ultram 50 mg", {"opioid"}, SHORT),
    ("nucynta", [], "Nucynta 50 mg", {"opioid"}, SHORT),
    ("nucynta-er", [], "Nucynta ER 100 mg", {"opioid"}, LONG),
    ("lomotil-diphenoxylate", [], "Lomotil 2.5-0.025 mg", {"opioid"}, SHORT),
    ("diphenoxylate", [], "diphenoxylate HCl / atropine sulfate", {"opioid"}, SHORT),
    ("difenoxin", [], "difenoxin and atropine", {"opioid"}, SHORT),
    ("hydrocodone-cough", [], "hydrocodone bitartrate / chlorpheniramine oral suspension", {"opioid"}, SHORT),
    ("codeine-cough", [], "guaifenesin-codeine syrup", {"opioid"}, SHORT),
    ("tylenol-3", [], "Tylenol #3", {"opioid"}, SHORT),
    ("tylenol-plain", [], "Tylenol 325 mg", set(), None),
    ("dihydrocodeine-not-codeine-substring", [], "dihydrocodeine", {"opioid"}, SHORT),
    ("sufentanil", [], "sufentanil 30 mcg SL", {"opioid"}, SHORT),
    ("alfentanil", [], "alfentanil injection", {"opioid"}, SHORT),
    ("methadone-text", [], "methadone 10 mg/mL oral concentrate", {"opioid", "methadone"}, LONG),
    ("ms-contin", [], "MS-Contin 15 mg", {"opioid"}, LONG),
    # extended-release wording
    ("er-abbrev", [], "oxycodone ER 10 mg", {"opioid"}, LONG),
    ("xr-abbrev", [], "morphine XR", {"opioid"}, LONG),
    ("extended-release-words", [], "hydromorphone extended-release 8 mg", {"opioid"}, LONG),
    ("24-hr", [], "24 HR hydromorphone 8 MG", {"opioid"}, LONG),
    ("12-hr", [], "12 HR hydrocodone 20 MG", {"opioid"}, LONG),
    ("patch", [], "fentanyl 25 mcg/hr patch", {"opioid"}, LONG),
    ("dosing-interval-is-not-er", [], "oxycodone 5 mg every 12 hr as needed", {"opioid"}, SHORT),
    ("q12h-is-not-er", [], "morphine 15 mg q12h", {"opioid"}, SHORT),
    ("tramadol-text", [], "traMADol 50 mg tablet", {"opioid"}, SHORT),
    # RxNorm codes count only with the RxNorm system
    ("rxnorm-code-under-local-system", [Coding(LOCAL, "1049621")], None, set(), None),
    ("rxnorm-code-no-system", [Coding(None, "7052")], None, set(), None),
    # not opioids
    ("loperamide", [], "loperamide 2 mg", set(), None),
    ("dextromethorphan", [], "dextromethorphan 30 mg", set(), None),
    ("robitussin-plain", [], "Robitussin", set(), None),
    ("empty", [], None, set(), None),
    ("blank-coding", [Coding(None, None, None)], "", set(), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("codings", "text", "groups", "kind"),
    [pytest.param(c, tx, g, k, id=i) for i, c, tx, g, k in MEDICATION_CASES],
)
def test_medication_groups(codings: list[Coding], text: str | None, groups: set[str], kind: OpioidKind | None) -> None:
    got_groups, got_kind = t.medication_groups(codings, text)
    assert got_groups == frozenset(groups)
    assert got_kind is kind
    assert got_groups <= t.MEDICATION_GROUPS


def test_medication_groups_accepts_generator() -> None:
    assert t.medication_groups((c for c in [rx("1049621")]), None) == (frozenset({"opioid"}), SHORT)


NALTREXONE_PRODUCT_CASES = [
    ("rx-oral", [rx("1483744")], None, Product.ORAL),
    ("rx-injection", [rx("637213")], None, Product.INJECTION),
    ("rx-combo", [rx("1551468")], None, Product.COMBO),
    ("rx-ingredient-defaults-oral", [rx("7243")], None, Product.ORAL),
    (
        "rx-ingredient-text-injection",
        [rx("7243", "naltrexone")],
        "naltrexone 380 mg IM every 4 weeks",
        Product.INJECTION,
    ),
    ("rx-code-beats-text", [rx("1483744")], "naltrexone injection", Product.ORAL),
    ("text-plain-defaults-oral", [], "naltrexone", Product.ORAL),
    ("text-tablet", [], "naltrexone HCl 50 mg tablet", Product.ORAL),
    ("text-revia", [], "ReVia", Product.ORAL),
    ("text-depade", [], "Depade 50 mg", Product.ORAL),
    ("text-vivitrol", [], "Vivitrol", Product.INJECTION),
    ("text-injectable", [], "naltrexone for extended-release injectable suspension", Product.INJECTION),
    ("text-380", [], "naltrexone 380 MG", Product.INJECTION),
    ("text-contrave", [], "Contrave 8-90 mg", Product.COMBO),
    ("text-bupropion", [], "bupropion / naltrexone ER tablet", Product.COMBO),
    ("local-code-display", [Coding(LOCAL, "NTX", "NALTREXONE 50MG TAB")], None, Product.ORAL),
    ("embeda-code", [rx("863845")], None, None),
    ("embeda-text", [], "morphine and naltrexone capsule", None),
    ("not-naltrexone", [rx("1049621")], None, None),
    ("naloxone", [], "naloxone", None),
    ("empty", [], None, None),
]


@pytest.mark.parametrize(
    ("codings", "text", "product"),
    [pytest.param(c, tx, p, id=i) for i, c, tx, p in NALTREXONE_PRODUCT_CASES],
)
def test_naltrexone_product(codings: list[Coding], text: str | None, product: Product | None) -> None:
    assert t.naltrexone_product(codings, text) is product


# -- labs ---------------------------------------------------------------------------------------------------------

LAB_CASES = [
    # (code, groups)
    ("19295-5", {"urine-opioid"}),  # opiates screen
    ("8222-2", {"urine-opioid"}),
    ("3879-4", {"urine-opioid"}),
    ("19597-4", {"urine-opioid"}),
    ("19411-8", {"urine-opioid"}),
    ("19642-8", {"urine-opioid"}),
    ("59673-4", {"urine-opioid"}),
    ("19550-3", {"urine-opioid"}),
    ("93495-0", {"urine-opioid"}),
    ("93494-3", {"urine-opioid"}),
    ("19321-9", {"urine-opioid"}),
    # tramadol added (spec §3), its cut-off and ratio codes dropped
    ("19710-3", {"urine-opioid"}),
    ("17718-8", {"urine-opioid"}),
    ("86454-6", {"urine-opioid"}),
    ("18338-4", {"urine-opioid"}),
    ("19712-9", set()),
    ("58404-5", set()),
    # naltrexone / naltrexol / naloxone tests removed (spec §3)
    *[
        (code, set())
        for code in (
            "12309-1", "18334-3", "19609-7", "19610-5", "19611-3", "19612-1", "19613-9", "72789-1", "72787-5",
            "72788-3", "78865-3", "79377-8", "82524-0", "82527-3", "42618-9", "92649-3", "77207-9", "78864-6",
            "78862-0", "78863-8", "89307-3",
        )
    ],
    # cut-off, ratio, Z-score: no result
    ("19299-7", set()),  # Opiates cutoff
    ("19324-3", set()),  # 6MAM CtO (short name)
    ("41465-6", set()),  # Opiates/Creatinine
    ("58395-5", set()),  # oxyCODONE/Creat (short name)
    ("78830-7", set()),  # HYDROcodone Z-score
    ("19296-3", set()),  # Opiates tested for (list of drugs)
    # not opioids
    ("86197-1", set()),  # pentylone
    # other groups
    ("1742-6", {"alt"}), ("1744-2", {"alt"}), ("77144-4", {"alt"}),
    ("1920-8", {"ast"}), ("30239-8", {"ast"}), ("88112-8", {"ast"}),
    ("1975-2", {"bilirubin"}),
    ("24325-3", {"liver-panel"}),
    *[(c, {"hcg"}) for c in ("2106-3", "2118-8", "2112-1", "2110-5", "80384-1", "80385-8")],
    ("82810-3", {"pregnancy-status"}),
    ("63895-7", {"lactation-status"}),
    *[
        (c, {"egfr"})
        for c in ("98979-8", "62238-1", "77147-7", "48642-3", "48643-1", "33914-3", "50044-7", "88293-6", "88294-4")
    ],
    ("2345-7", set()),  # glucose
]  # fmt: skip


@pytest.mark.parametrize(("code", "groups"), [pytest.param(c, g, id=c) for c, g in LAB_CASES])
def test_lab_groups(code: str, groups: set[str]) -> None:
    assert t.lab_groups([Coding(LN, code)], None) == frozenset(groups)
    assert t.lab_groups([Coding(LN, code)], None) <= t.LAB_GROUPS


def test_lab_groups_loinc_system_only() -> None:
    assert t.lab_groups([Coding(LOCAL, "19295-5", "Opiates screen")], "opiates urine screen") == frozenset()
    assert t.lab_groups([Coding(LOCAL, "X"), Coding(LN, " 1742-6 ")], None) == frozenset({"alt"})


@pytest.mark.parametrize(
    ("code", "analyte"),
    [
        ("19295-5", "opiates"), ("3879-4", "opiates"), ("8222-2", "opiates"), ("19597-4", "morphine"),
        ("3830-7", "morphine"), ("19601-4", "morphine-free"), ("19411-8", "codeine"), ("19642-8", "oxycodone"),
        ("10998-3", "oxycodone"), ("11246-6", "oxycodone"), ("19482-9", "hydrocodone"), ("19486-0", "hydromorphone"),
        ("59673-4", "fentanyl"), ("11235-9", "fentanyl"), ("19550-3", "methadone"), ("3773-9", "methadone"),
        ("93495-0", "eddp"), ("93494-3", "buprenorphine"), ("3414-0", "buprenorphine"), ("19321-9", "6-mam"),
        ("10976-9", "6-mam"), ("19591-7", "6-mam"), ("19710-3", "tramadol"), ("17719-6", "tramadol"),
        ("82371-6", "norbuprenorphine"), ("58359-1", "buprenorphine+norbuprenorphine"),
        ("58379-9", "fentanyl+norfentanyl"), ("67822-7", "fentanyl+norfentanyl"), ("19439-9", "heroin"),
    ],
)  # fmt: skip
def test_urine_analyte(code: str, analyte: str) -> None:
    assert t.urine_analyte([Coding(LN, code)]) == analyte


def test_urine_analyte_none() -> None:
    assert t.urine_analyte([Coding(LN, "1742-6")]) is None
    assert t.urine_analyte([Coding(LN, "12309-1")]) is None  # naltrexone test: not an opioid screen
    assert t.urine_analyte([Coding(LOCAL, "19295-5")]) is None
    assert t.urine_analyte([]) is None


def test_every_urine_code_has_an_analyte() -> None:
    labs = json.loads((DATA / "labs.json").read_text(encoding="utf-8"))
    assert set(labs["urine_analyte"]) == set(labs["loinc"]["urine-opioid"])


# -- conditions ---------------------------------------------------------------------------------------------------

CONDITION_CASES = [
    # (system, code, groups)
    (ICD, "F11.23", {"opioid-withdrawal"}),
    (ICD, "F1123", {"opioid-withdrawal"}),
    (ICD, "f11.23", {"opioid-withdrawal"}),
    (ICD, "F11.13", {"opioid-withdrawal"}),
    (ICD, "F11.93", {"opioid-withdrawal"}),
    (ICD, "F11.230", {"opioid-withdrawal"}),  # deeper child of a withdrawal code
    (ICD, "F11.21", {"opioid-use-disorder-remission"}),
    (ICD, "F11.11", {"opioid-use-disorder-remission"}),
    (ICD, "F11.20", {"opioid-use-disorder"}),
    (ICD, "F11.10", {"opioid-use-disorder"}),
    (ICD, "F11.90", {"opioid-use-disorder"}),
    (ICD, "F11.220", {"opioid-use-disorder"}),
    (ICD, "F11.24", {"opioid-use-disorder"}),
    (ICD, "F11", {"opioid-use-disorder"}),
    (t.ICD10_SYSTEM, "F11.23", {"opioid-withdrawal"}),
    (t.ICD10_SYSTEM, "F11.3", {"opioid-withdrawal"}),  # WHO ICD-10 withdrawal state
    (ICD, "B15.9", {"hepatic-acute"}),
    (ICD, "B16.9", {"hepatic-acute"}),
    (ICD, "B17.10", {"hepatic-acute"}),
    (ICD, "B17.11", {"hepatic-acute"}),
    (ICD, "B1710", {"hepatic-acute"}),
    (ICD, "K70.11", {"hepatic-acute"}),
    (ICD, "K70.41", {"hepatic-acute"}),
    (ICD, "K71.2", {"hepatic-acute"}),
    (ICD, "K72.00", {"hepatic-acute"}),
    (ICD, "K72.91", {"hepatic-acute"}),
    (ICD, "K70.30", {"liver-chronic"}),
    (ICD, "K74.60", {"liver-chronic"}),
    (ICD, "B18.2", {"liver-chronic"}),
    (ICD, "K75.4", {"liver-chronic"}),
    (ICD, "K70.0", set()),  # alcoholic fatty liver: not listed
    (ICD, "N18.4", {"renal-impairment"}),
    (ICD, "N18.32", {"renal-impairment"}),
    (ICD, "N18.31", set()),  # stage 3a: not listed
    (ICD, "N17.9", {"renal-impairment"}),
    (ICD, "N19", {"renal-impairment"}),
    (ICD, "Z33.1", {"pregnancy"}),
    (ICD, "Z34.00", {"pregnancy"}),
    (ICD, "O09.511", {"pregnancy"}),
    (ICD, "Z39.1", {"lactation"}),
    (ICD, "R45.851", {"suicidal"}),
    (ICD, "T14.91XA", {"suicidal"}),
    (ICD, "F32.9", {"depression"}),
    (ICD, "F32.A", {"depression"}),
    (ICD, "F33.1", {"depression"}),
    (ICD, "F34.1", {"depression"}),
    (ICD, "F53.0", {"depression"}),
    (ICD, "I10", set()),
    (SCT, "87132004", {"opioid-withdrawal"}),
    (SCT, "703846009", {"opioid-withdrawal"}),
    (SCT, "75544000", {"opioid-use-disorder"}),
    (SCT, "1081000119105", {"opioid-use-disorder"}),
    (SCT, "5602001", {"opioid-use-disorder"}),  # opioid abuse (Synthea)
    (SCT, "231477003", {"opioid-use-disorder"}),  # dependence on diamorphine
    (SCT, "191865004", {"opioid-use-disorder"}),  # used by the CDC IG request examples
    (SCT, "191821007", {"opioid-use-disorder-remission"}),
    (SCT, "191914006", {"opioid-use-disorder-remission"}),
    (SCT, "295174006", set()),  # heroin overdose
    (SCT, "1148649003", set()),  # poisoning caused by opioid receptor agonist
    (SCT, "37871000", {"hepatic-acute"}),
    (SCT, "19943007", {"liver-chronic"}),
    (SCT, "72892002", {"pregnancy"}),  # normal pregnancy (Synthea)
    (SCT, "77386006", {"pregnancy"}),
    (SCT, "866041003", {"lactation"}),
    (SCT, "46177005", {"renal-impairment"}),
    (SCT, "370143000", {"depression"}),
    (SCT, "38341003", set()),  # hypertension
    (LOCAL, "F11.23", set()),  # ICD code under a local system
    (SCT, "F11.23", set()),
]


@pytest.mark.parametrize(
    ("system", "code", "groups"),
    [pytest.param(s, c, g, id=f"{s.rsplit('/', 1)[-1]}-{c}") for s, c, g in CONDITION_CASES],
)
def test_condition_groups(system: str, code: str, groups: set[str]) -> None:
    got = t.condition_groups([Coding(system, code)], None)
    assert got == frozenset(groups)
    assert got <= t.CONDITION_GROUPS


def test_condition_groups_several_codings_and_no_text_matching() -> None:
    codings = [Coding(SCT, "87132004"), Coding(ICD, "F11.23"), Coding(ICD, "Z33.1")]
    assert t.condition_groups(codings, None) == frozenset({"opioid-withdrawal", "pregnancy"})
    assert t.condition_groups([Coding(LOCAL, "W1", "opioid withdrawal")], "opioid withdrawal") == frozenset()
    assert t.condition_groups([Coding(ICD, None), Coding(ICD, "  ")], None) == frozenset()


# -- allergies ----------------------------------------------------------------------------------------------------

ALLERGY_CASES = [
    ("naltrexone-ingredient", [rx("7243")], None, {"naltrexone"}),
    ("naltrexone-tablet", [rx("1483744")], None, {"naltrexone"}),
    ("vivitrol-code", [rx("637213")], None, {"naltrexone"}),
    ("contrave-code", [rx("1551468")], None, {"naltrexone"}),
    ("naloxone-ingredient", [rx("7242")], None, {"naloxone"}),
    ("naloxone-spray-code", [rx("1725059")], None, {"naloxone"}),
    ("nalmefene-ingredient", [rx("7237")], None, {"nalmefene"}),
    ("text-naltrexone", [], "Naltrexone", {"naltrexone"}),
    ("text-revia", [], "ReVia", {"naltrexone"}),
    ("snomed-display-naltrexone", [Coding(SCT, "000", "Naltrexone (substance)")], None, {"naltrexone"}),
    ("text-narcan", [], "NARCAN", {"naloxone"}),
    ("text-nalmefene", [], "nalmefene", {"nalmefene"}),
    ("bup-naloxone-code", [rx("1010600")], None, set()),
    ("bup-naloxone-text", [], "buprenorphine/naloxone", set()),
    ("suboxone-text", [], "Suboxone", set()),
    ("embeda-code", [rx("863845")], None, set()),
    ("embeda-text", [], "morphine/naltrexone", set()),
    ("naloxone-named-alone-besides-suboxone-code", [rx("1010600")], "naloxone", {"naloxone"}),
    ("morphine", [rx("7052")], "morphine", set()),
    ("methylnaltrexone", [], "methylnaltrexone", set()),
    ("rxnorm-code-wrong-system", [Coding(LOCAL, "7243")], None, set()),
]


@pytest.mark.parametrize(("codings", "text", "groups"), [pytest.param(c, tx, g, id=i) for i, c, tx, g in ALLERGY_CASES])
def test_allergy_groups(codings: list[Coding], text: str | None, groups: set[str]) -> None:
    got = t.allergy_groups(codings, text)
    assert got == frozenset(groups)
    assert got <= t.ALLERGY_GROUPS


# -- constants ----------------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert t.HEPATIC_PANEL_LOINC == "24325-3"
    assert t.lab_groups([Coding(LN, t.HEPATIC_PANEL_LOINC)], None) == frozenset({"liver-panel"})
    assert t.URINE_SCREEN_ORDER_LOINC == "19295-5"
    assert t.URINE_SCREEN_ORDER_DISPLAY == "Opiates [Presence] in Urine by Screen method"
    assert t.lab_groups([Coding(LN, t.URINE_SCREEN_ORDER_LOINC)], None) == frozenset({"urine-opioid"})
    assert t.NALOXONE_NASAL_RXNORM == "1725059"
    assert t.NALOXONE_NASAL_DISPLAY == "naloxone hydrochloride 40 MG/ML Nasal Spray"
    assert t.medication_groups([rx(t.NALOXONE_NASAL_RXNORM)], None) == (frozenset({"naloxone"}), None)


# -- against the source value sets (shared data) -------------------------------------------------------------------


def _members(vs_id: str) -> list[dict[str, str]]:
    data = json.loads((VALUE_SETS / f"{vs_id}.json").read_text(encoding="utf-8"))
    members: list[dict[str, str]] = data["expansion"]["contains"]
    return members


OPIOID_SETS = (
    "opioid-analgesics-with-ambulatory-misuse-potential", "non-synthetic-opioid-medications",
    "synthetic-opioid-medications", "buprenorphine-medications", "methadone-medications",
    "fentanyl-type-medications", "oxycodone-medications", "extended-release-opioid-with-ambulatory-misuse-potential",
)  # fmt: skip


@needs_shared
@pytest.mark.parametrize("vs_id", OPIOID_SETS)
def test_every_value_set_opioid_is_an_opioid_by_code_and_by_display(vs_id: str) -> None:
    er = vs_id == "extended-release-opioid-with-ambulatory-misuse-potential"
    for m in _members(vs_id):
        groups, kind = t.medication_groups([rx(m["code"])], None)
        assert "opioid" in groups and "naltrexone" not in groups, m
        by_name, name_kind = t.medication_groups([Coding(LOCAL, "x", m["display"])], None)
        assert "opioid" in by_name and "naltrexone" not in by_name, m
        if er:
            assert kind is LONG and name_kind is LONG, m


@needs_shared
def test_naloxone_only_products_are_not_opioids() -> None:
    for m in _members("naloxone-medications"):
        by_code, _ = t.medication_groups([rx(m["code"])], None)
        by_name, _ = t.medication_groups([Coding(LOCAL, "x", m["display"])], None)
        assert "naloxone" in by_code and "naloxone" in by_name, m
        combo = any(w in m["display"] for w in ("buprenorphine", "pentazocine"))
        assert ("opioid" in by_code) is combo and ("opioid" in by_name) is combo, m


@needs_shared
def test_build_is_reproducible(tmp_path: Path) -> None:
    script = REPO / "scripts" / "build_terminology.py"
    for run in ("a", "b"):
        result = subprocess.run(  # noqa: S603 - fixed interpreter and script path
            [sys.executable, str(script), str(SHARED_TERMINOLOGY), "--out", str(tmp_path / run)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in DATA.glob("*.json"))
    assert names == ["conditions.json", "labs.json", "medications.json"]
    for name in names:
        committed = (DATA / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == committed, f"{name} is stale: re-run the build script"
        assert (tmp_path / "b" / name).read_bytes() == committed


def test_data_headers_name_sources() -> None:
    for name in ("medications.json", "labs.json", "conditions.json"):
        header = json.loads((DATA / name).read_text(encoding="utf-8"))["header"]
        assert header["generated_by"] == "scripts/build_terminology.py"
        assert any(s["commit"] == "b29bdcbf6db6f3de26486dbc3820572ee9a78b89" for s in header["sources"])
        assert all(f["sha256"] and f["path"].endswith(".json") for f in header["files"])
        assert header["notes"]
