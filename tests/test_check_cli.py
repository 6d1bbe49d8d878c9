"""``cds-service check PATIENT.json``: cards for one patient file in the terminal or as JSON, with exit codes
0 (no critical card), 1 (a critical card), 2 (usage or input error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "patients"


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code, out, _ = _check(capsys, *args, "--json")
    body: dict[str, Any] = json.loads(out)
    return code, [c["source"]["topic"]["code"] for c in body["cards"]]


def test_a_stop_card_is_printed_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, str(FIXTURES / "opioid-active.json"), "--product", "oral")
    assert code == 1 and err == ""
    assert "Opioid-Active Test (sbx-opioid-active)" in out
    assert "Naltrexone 50 mg oral tablet (generic; ReVia): 50 mg by mouth once daily, 30 days + 11 refills" in out
    assert "[CRITICAL]  Active opioid (oxycodone)" in out
    assert "* Remove the naltrexone order (recommended)" in out
    assert "Override reasons:" in out and "rule opioid-active" in out
    assert "**" not in out and "\x1b[" not in out  # Markdown and colour stripped when not a terminal
    assert out.index("[CRITICAL]") < out.index("[INFO]")


def test_info_only_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(capsys, str(FIXTURES / "clean-record.json"))
    assert code == 0
    assert "1 card (0 critical, 0 warning, 1 info)" in out and "[INFO]" in out and "[CRITICAL]" not in out


def test_a_warning_alone_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(capsys, str(FIXTURES / "pregnant-urine-negative.json"))
    assert code == 0 and "[WARNING]" in out


def test_json_prints_the_raw_cds_hooks_response(capsys: pytest.CaptureFixture[str]) -> None:
    code, rules = _json(capsys, str(FIXTURES / "buprenorphine-maintenance.json"), "--product", "injection")
    assert code == 1
    assert sorted(rules) == ["opioid-active", "opioid-urine-positive", "overdose-risk"]


def test_the_fixture_suggested_order_is_the_default_and_options_override_it(capsys: pytest.CaptureFixture[str]) -> None:
    dose_fixture = str(FIXTURES / "dose-regimen.json")
    assert "dose-regimen" in _json(capsys, dose_fixture)[1]  # the fixture suggests 100 mg daily
    assert "dose-regimen" not in _json(capsys, dose_fixture, "--dose", "50")[1]
    clean = str(FIXTURES / "clean-record.json")
    assert "dose-regimen" in _json(capsys, clean, "--dose", "100")[1]
    assert "duration-short" in _json(capsys, clean, "--refills", "0")[1]
    assert "dose-regimen" not in _json(capsys, clean, "--dose", "100", "--frequency", "every-other-day")[1]


def test_order_select_hook(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(capsys, str(FIXTURES / "opioid-active.json"), "--hook", "order-select")
    assert code == 1 and "order-select -> naltrexone-order-select" in out


def test_colour_and_symbols_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _check(capsys, str(FIXTURES / "opioid-active.json"), "--color", "always")
    assert code == 1
    assert "\x1b[1;31m\N{HEAVY MULTIPLICATION X} CRITICAL\x1b[0m" in out
    assert "\N{INFORMATION SOURCE} INFO" in out


def test_a_site_config_policy_applies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[auth]\nrequired = false\n\n[policy.indicators]\noverdose-risk = "off"\n')
    code, rules = _json(capsys, str(FIXTURES / "clean-record.json"), "--config", str(config))
    assert code == 0 and rules == []
    code, out, _ = _check(capsys, str(FIXTURES / "clean-record.json"), "--config", str(config))
    assert "No cards" in out


def test_any_fhir_bundle_works(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:aaaa", "resource": {"resourceType": "Patient", "gender": "male"}},
            {
                "fullUrl": "urn:uuid:bbbb",
                "resource": {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "864706"}],
                        "text": "methadone hydrochloride 10 MG Oral Tablet",
                    },
                    "subject": {"reference": "urn:uuid:aaaa"},
                    "authoredOn": "2021-03-01",
                },
            },
        ],
    }
    path = tmp_path / "someone.json"
    path.write_text(json.dumps(bundle))
    code, rules = _json(capsys, str(path))
    assert code == 1 and "opioid-active" in rules


def test_a_shared_synthea_patient(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import shared_data_or_skip

    folder = shared_data_or_skip("synthetic-patients")
    patient = next(p for p in sorted(folder.glob("*.json")) if "Information" not in p.name)
    code, out, err = _check(capsys, str(patient), "--product", "injection")
    assert code in (0, 1) and err == ""
    assert "Naltrexone 380 mg extended-release injection" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("{not json", "not valid JSON"),
        ('{"hello": "world"}', "no resourceType"),
        ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Organization"}}]}',
         "holds no Patient"),
    ],
)  # fmt: skip
def test_input_errors_exit_2_with_a_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "patient.json"
    if content is not None:
        path.write_text(content)
    code, out, err = _check(capsys, str(path))
    assert code == 2 and out == ""
    assert err.startswith("cds-service check: ") and message in err


def test_two_patients_need_a_patient_id(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "id": i}} for i in ("a", "b")],
            }
        )
    )
    assert _check(capsys, str(path))[0] == 2
    assert _check(capsys, str(path), "--patient-id", "b")[0] == 0


def test_a_bad_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[policy]\nno_such_key = 1\n[auth]\nrequired = false\n")
    code, _, err = _check(capsys, str(FIXTURES / "clean-record.json"), "--config", str(config))
    assert code == 2 and "no_such_key" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", str(FIXTURES / "clean-record.json"), "--product", "patch"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
