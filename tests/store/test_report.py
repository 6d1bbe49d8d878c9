"""The override report: exact figures on a known set of calls and feedback, the three output formats, the plot,
the command line, and a whole sandbox-like session (hook calls, overrides, accepts) through the real app."""

from __future__ import annotations

import csv
import io
import json
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cds_service.cli import main
from cds_service.observe import CallRecord, CardRecord
from cds_service.store.report import (
    CardFact,
    FeedbackFact,
    Reason,
    build_report,
    compute_figures,
    latest_outcomes,
    render_csv,
    render_json,
    render_svg,
    render_table,
    weekly_override_rates,
)
from cds_service.store.writes import FeedbackRow, write_calls, write_feedback
from tests.builders import NOW, empty_prefetch, hook_request
from tests.store.conftest import flush

SIGN = "naltrexone-order-sign"
OA, LE = "opioid-active", "liver-enzymes-elevated"
R1 = ("patient-informed", "urn:site:reasons", "Patient informed of the risk")
R2 = ("benefit-outweighs-risk", "urn:site:reasons", "Benefit outweighs risk")
R3 = ("documented-elsewhere", "urn:site:reasons", "Documented elsewhere")
SINCE = datetime(2026, 11, 16, tzinfo=UTC)  # Monday of NOW's week


def _call(latency_ms: float, *cards: tuple[str, str], when: datetime = NOW, status: int = 200) -> CallRecord:
    return CallRecord(
        hook_instance=str(uuid.uuid4()),
        service_id=SIGN,
        started_at=when,
        latency_ms=latency_ms,
        status_code=status,
        cards=tuple(CardRecord(rule, "warning", card) for rule, card in cards),
        error="required" if status == 412 else None,
    )


def _fb(card: str, outcome: str, minute: int, reason: tuple[str, str, str] | None = None) -> FeedbackRow:
    code, system, display = reason or (None, None, None)
    return FeedbackRow(
        card_uuid=card,
        outcome=outcome,
        outcome_timestamp=NOW + timedelta(minutes=minute),
        override_code=code,
        override_system=system,
        override_display=display,
    )


@pytest.fixture
def known(engine: Engine) -> Engine:
    """Five calls this week (one failed), one a month ago; feedback with changed minds, a resend, an unknown card."""
    write_calls(
        engine,
        [
            _call(10, (OA, "A1"), (LE, "B1")),
            _call(20, (OA, "A2")),
            _call(30, (OA, "A3"), (OA, "A4")),  # two naltrexone drafts in one call
            _call(40, (LE, "B2")),  # no feedback on B2
            _call(1000, status=412),
            _call(5, (OA, "A0"), when=NOW - timedelta(days=30)),
        ],
    )
    feedback = [
        _fb("A1", "overridden", 1, R1),
        _fb("A2", "overridden", 2, R1),
        _fb("A3", "accepted", 3),
        _fb("A3", "overridden", 4, R2),  # changed their mind: overridden
        _fb("A4", "overridden", 3, R2),
        _fb("A4", "accepted", 5),  # changed their mind: accepted
        _fb("B1", "accepted", 1),
        _fb("A0", "overridden", 1, R3),
        _fb("X-unknown", "overridden", 1, R1),
    ]
    for row in feedback:
        write_feedback(engine, SIGN, [row], NOW + timedelta(hours=1))
    write_feedback(engine, SIGN, [feedback[0]], NOW + timedelta(hours=2))  # a resend changes nothing
    return engine


def _reasons(*pairs: tuple[tuple[str, str, str], int]) -> tuple[Reason, ...]:
    return tuple(Reason(code, system, display, n) for (code, system, display), n in pairs)


def test_figures_since_this_week(known: Engine) -> None:
    report, _ = build_report(known, SINCE, NOW)
    assert (report.calls, report.failed_calls, report.unknown_card_feedback) == (5, 1, 1)
    oa, le = report.rules
    assert (oa.rule_id, oa.fired, oa.with_feedback, oa.accepted, oa.overridden) == (OA, 4, 4, 1, 3)
    assert oa.override_rate == pytest.approx(0.75)
    assert oa.top_override_reasons == _reasons((R1, 2), (R2, 1))
    assert oa.median_latency_ms == pytest.approx(20.0)  # calls 10, 20, 30 (the two-card call counts once)
    assert (le.rule_id, le.fired, le.with_feedback, le.accepted, le.overridden) == (LE, 2, 1, 1, 0)
    assert le.override_rate == 0.0
    assert le.top_override_reasons == ()
    assert le.median_latency_ms == pytest.approx(25.0)


def test_figures_for_all_time(known: Engine) -> None:
    report, weekly = build_report(known, None, NOW)
    assert (report.calls, report.failed_calls) == (6, 1)
    oa = report.rules[0]
    assert (oa.fired, oa.with_feedback, oa.accepted, oa.overridden) == (5, 5, 1, 4)
    assert oa.override_rate == pytest.approx(0.8)
    assert oa.top_override_reasons == _reasons((R1, 2), (R2, 1), (R3, 1))
    assert oa.median_latency_ms == pytest.approx(15.0)  # 5, 10, 20, 30
    assert [(p.week, p.override_rate, p.with_feedback) for p in weekly[OA]] == [
        (date(2026, 10, 19), 1.0, 1),
        (date(2026, 11, 16), 0.75, 4),
    ]
    assert [(p.week, p.override_rate) for p in weekly[LE]] == [(date(2026, 11, 16), 0.0)]


def test_json_output(known: Engine) -> None:
    report, _ = build_report(known, SINCE, NOW)
    data = json.loads(render_json(report))
    assert data["since"] == SINCE.isoformat()
    assert (data["calls"], data["failedCalls"], data["unknownCardFeedback"]) == (5, 1, 1)
    assert data["rules"][0] == {
        "ruleId": OA,
        "fired": 4,
        "withFeedback": 4,
        "accepted": 1,
        "overridden": 3,
        "overrideRate": 0.75,
        "medianLatencyMs": 20.0,
        "topOverrideReasons": [
            {"code": R1[0], "system": R1[1], "display": R1[2], "count": 2},
            {"code": R2[0], "system": R2[1], "display": R2[2], "count": 1},
        ],
    }


def test_csv_output(known: Engine) -> None:
    report, _ = build_report(known, SINCE, NOW)
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [r["rule_id"] for r in rows] == [OA, LE]
    oa = rows[0]
    assert (oa["fired"], oa["with_feedback"], oa["accepted"], oa["overridden"]) == ("4", "4", "1", "3")
    assert (oa["override_rate"], oa["median_latency_ms"]) == ("0.7500", "20.0")
    assert (oa["reason_1_code"], oa["reason_1_display"], oa["reason_1_count"]) == (R1[0], R1[2], "2")
    assert (oa["reason_2_code"], oa["reason_2_count"], oa["reason_3_code"]) == (R2[0], "1", "")
    assert rows[1]["override_rate"] == "0.0000"


def test_table_output(known: Engine) -> None:
    report, _ = build_report(known, SINCE, NOW)
    text = render_table(report)
    lines = text.splitlines()
    assert "5 calls (1 failed)" in lines[0]
    assert "1 feedback items for unknown cards" in lines[0]
    [oa_line] = [line for line in lines if line.startswith(OA)]
    assert oa_line.split()[:6] == [OA, "4", "4", "1", "3", "75.0%"]
    assert "20.0 ms" in oa_line
    assert f"{R1[2]} (2); {R2[2]} (1)" in oa_line
    [le_line] = [line for line in lines if line.startswith(LE)]
    assert le_line.split()[:6] == [LE, "2", "1", "1", "0", "0.0%"]


def test_empty_database(engine: Engine) -> None:
    report, weekly = build_report(engine, None, NOW)
    assert report.rules == ()
    assert "No cards were issued" in render_table(report)
    assert render_csv(report).count("\n") == 1
    assert weekly == {}
    ET.fromstring(render_svg(weekly))  # noqa: S314 - our own output


# -- pure functions -------------------------------------------------------------------------------------------------
def _fact(card: str, outcome: str, minute: int, received: int = 0, code: str | None = None) -> FeedbackFact:
    return FeedbackFact(
        card, outcome, NOW + timedelta(minutes=minute), NOW + timedelta(minutes=received), override_code=code
    )


def test_latest_outcome_breaks_timestamp_ties_by_arrival() -> None:
    latest = latest_outcomes([_fact("c", "accepted", 1, received=5), _fact("c", "overridden", 1, received=3)])
    assert latest["c"].outcome == "accepted"


def test_top_three_reasons_ranked_by_count_then_code() -> None:
    cards = [CardFact(OA, f"c{i}", i, NOW, 1.0) for i in range(7)]
    codes = ["b", "a", "c", "d", "d", "c", None]
    items = [_fact(f"c{i}", "overridden", 1, code=code) for i, code in enumerate(codes)]
    [figures] = compute_figures(cards, items)
    assert [(r.code, r.count) for r in figures.top_override_reasons] == [("c", 2), ("d", 2), ("a", 1)]
    assert figures.overridden == 7  # an override without a reason still counts as an override


def test_weekly_series_skips_cards_without_feedback() -> None:
    monday = datetime(2026, 11, 2, 9, tzinfo=UTC)
    cards = [CardFact(OA, "a", 1, monday, 1.0), CardFact(OA, "b", 2, monday + timedelta(days=6), 1.0)]
    cards.append(CardFact(OA, "c", 3, monday + timedelta(days=7), 1.0))
    series = weekly_override_rates(cards, [_fact("a", "overridden", 0), _fact("b", "accepted", 0)])
    assert [(p.week, p.override_rate, p.with_feedback) for p in series[OA]] == [(date(2026, 11, 2), 0.5, 2)]


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_report_json_and_plot(
    known: Engine, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "override.svg"
    assert main(["report", "--database-url", database_url, "--format", "json", "--plot", str(plot)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["ruleId"], r["overrideRate"]) for r in data["rules"]] == [(OA, 0.8), (LE, 0.0)]
    svg = ET.fromstring(plot.read_text(encoding="utf-8"))  # noqa: S314 - our own output
    ns = {"svg": "http://www.w3.org/2000/svg"}
    groups = svg.findall("svg:g[@class='rule']", ns)
    assert sorted(g.get("data-rule", "") for g in groups) == sorted([OA, LE])
    [oa] = [g for g in groups if g.get("data-rule") == OA]
    points = oa.find("svg:polyline", ns)
    assert points is not None and len((points.get("points") or "").split()) == 2  # two weeks
    assert len(oa.findall("svg:circle", ns)) == 2


def test_cli_report_since_and_formats(known: Engine, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--database-url", database_url, "--since", "2026-11-16", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["override_rate"] == "0.7500"
    assert main(["report", "--database-url", database_url, "--since", "2026-11-16T00:00:00Z"]) == 0
    assert "75.0%" in capsys.readouterr().out


def test_cli_report_reads_the_config_file(
    known: Engine, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cds.toml"
    config.write_text(f'[auth]\nrequired = false\n\n[feedback]\ndatabase_url = "{database_url}"\n', encoding="utf-8")
    assert main(["report", "--config", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == 6


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--plot", "out.png"], 2, "SVG"),
        (["--database-url", "mysql://u@h/db"], 2, "supported are"),
        (["--database-url", "sqlite:///{tmp}/absent.sqlite3"], 1, "no feedback database"),
    ],
    ids=["png", "unsupported-database", "no-database-yet"],
)
def test_cli_report_errors(
    argv: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["report", *argv]) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "absent.sqlite3").exists()  # a report never creates an empty database


def test_cli_rejects_a_bad_since(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--since", "last tuesday"])
    assert "not a date" in capsys.readouterr().err


def test_cli_db_upgrade_and_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert main(["db", "current", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "at revision 0001 (latest: 0001)" in out


# -- a sandbox-like session through the real app --------------------------------------------------------------------
def test_a_sessions_overrides_show_up_in_the_report(
    app_client: TestClient, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown: list[dict[str, Any]] = []
    for _ in range(4):
        r = app_client.post(f"/cds-services/{SIGN}", json=hook_request(prefetch=empty_prefetch()))
        assert r.status_code == 200
        shown += r.json()["cards"]
    assert shown
    expected: dict[str, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    items = []
    for i, card in enumerate(shown):
        rule = card["source"]["topic"]["code"]
        expected.setdefault(rule, Counter())["fired"] += 1
        if i % 4 == 3:
            continue  # no feedback on every fourth card
        item: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": f"2026-11-21T15:{i:02d}:00Z"}
        if i % 4 == 0:
            item["outcome"] = "accepted"
        else:
            item["outcome"] = "overridden"
            if card.get("overrideReasons"):
                item["overrideReason"] = {"reason": card["overrideReasons"][0], "userComment": "ok"}
                reasons[card["overrideReasons"][0]["code"]] += 1
        expected[rule][item["outcome"]] += 1
        items.append(item)
    assert app_client.post(f"/cds-services/{SIGN}/feedback", json={"feedback": items}).status_code == 200
    flush(app_client)

    assert main(["report", "--database-url", database_url, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calls"] == 4
    by_rule = {r["ruleId"]: r for r in data["rules"]}
    assert set(by_rule) == set(expected)
    for rule, counts in expected.items():
        figures = by_rule[rule]
        answered = counts["accepted"] + counts["overridden"]
        assert figures["fired"] == counts["fired"]
        assert figures["withFeedback"] == answered
        assert (figures["accepted"], figures["overridden"]) == (counts["accepted"], counts["overridden"])
        assert figures["overrideRate"] == (pytest.approx(counts["overridden"] / answered) if answered else None)
        assert figures["medianLatencyMs"] > 0
    reported = Counter({r["code"]: r["count"] for f in data["rules"] for r in f["topOverrideReasons"]})
    assert reported == reasons or len(reasons) > 3
