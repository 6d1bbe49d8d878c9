"""The override report: which rule is noise? Per rule, from the audit trail and the clinicians' feedback.

Definitions (also in docs/feedback-and-report.md):

* **fired**: cards the rule produced in hook calls that started on or after ``since``.
* **with feedback**: those cards for which at least one feedback item was stored (for the same service).
* **accepted / overridden**: by each card's *latest* outcome (latest ``outcomeTimestamp``, then latest received):
  a clinician who first accepted and later overrode counts once, as overridden.
* **override rate**: overridden / with feedback (None when no card of the rule has feedback).
* **top override reasons**: the three most frequent coded reasons among the overridden cards' latest feedback.
* **median latency**: median evaluation latency of the hook calls in which the rule fired (each call once).
* **unknown-card feedback**: feedback items for card uuids this service never issued (received since ``since``).

Loading (``load_facts``) is the only function here that touches the database; the figures, the weekly series and
the renderers (table, CSV, JSON, SVG) are pure functions over plain records, so they are tested by tables.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final
from xml.sax.saxutils import escape

from sqlalchemy import ColumnElement, Engine, and_, func, select, true

from cds_service.store.schema import call_cards, feedback, hook_calls

TOP_REASONS: Final = 3


@dataclass(frozen=True, slots=True)
class CardFact:
    """One card the service issued, with the call it came from."""

    rule_id: str
    card_uuid: str
    call_id: int
    started_at: datetime
    latency_ms: float


@dataclass(frozen=True, slots=True)
class FeedbackFact:
    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_timestamp: datetime
    received_at: datetime
    override_code: str | None = None
    override_system: str | None = None
    override_display: str | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    code: str | None
    system: str | None
    display: str | None
    count: int

    @property
    def label(self) -> str:
        return self.display or self.code or "?"


@dataclass(frozen=True, slots=True)
class RuleFigures:
    rule_id: str
    fired: int
    with_feedback: int
    accepted: int
    overridden: int
    override_rate: float | None
    top_override_reasons: tuple[Reason, ...]
    median_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    since: datetime | None
    calls: int
    failed_calls: int
    unknown_card_feedback: int
    rules: tuple[RuleFigures, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class WeekPoint:
    week: date  # Monday (UTC) of the week in which the cards were issued
    override_rate: float
    with_feedback: int


# -- figures (pure) -------------------------------------------------------------------------------------------------
def latest_outcomes(items: Iterable[FeedbackFact]) -> dict[str, FeedbackFact]:
    """Each card's latest feedback: the clinician's final word on it."""
    latest: dict[str, FeedbackFact] = {}
    for item in items:
        seen = latest.get(item.card_uuid)
        if seen is None or (item.outcome_timestamp, item.received_at) > (seen.outcome_timestamp, seen.received_at):
            latest[item.card_uuid] = item
    return latest


def _top_reasons(overridden: Iterable[FeedbackFact]) -> tuple[Reason, ...]:
    counts: Counter[tuple[str | None, str | None]] = Counter()
    displays: dict[tuple[str | None, str | None], str | None] = {}
    for item in overridden:
        if item.override_code is None and item.override_display is None:
            continue
        key = (item.override_code, item.override_system) if item.override_code else (None, item.override_display)
        counts[key] += 1
        displays.setdefault(key, item.override_display)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0] or "", displays[kv[0]] or ""))
    return tuple(
        Reason(code=code, system=system if code else None, display=displays[(code, system)], count=n)
        for (code, system), n in ranked[:TOP_REASONS]
    )


def compute_figures(cards: Sequence[CardFact], items: Iterable[FeedbackFact]) -> tuple[RuleFigures, ...]:
    """Per-rule figures, most-fired rule first (ties by rule id). ``items`` may include other cards' feedback."""
    latest = latest_outcomes(items)
    by_rule: dict[str, list[CardFact]] = defaultdict(list)
    for card in cards:
        by_rule[card.rule_id].append(card)
    out = []
    for rule_id, rule_cards in by_rule.items():
        outcomes = [latest[c.card_uuid] for c in rule_cards if c.card_uuid in latest]
        overridden = [f for f in outcomes if f.outcome == "overridden"]
        accepted = sum(1 for f in outcomes if f.outcome == "accepted")
        latencies = {c.call_id: c.latency_ms for c in rule_cards}
        out.append(
            RuleFigures(
                rule_id=rule_id,
                fired=len(rule_cards),
                with_feedback=len(outcomes),
                accepted=accepted,
                overridden=len(overridden),
                override_rate=len(overridden) / len(outcomes) if outcomes else None,
                top_override_reasons=_top_reasons(overridden),
                median_latency_ms=statistics.median(latencies.values()) if latencies else None,
            )
        )
    return tuple(sorted(out, key=lambda r: (-r.fired, r.rule_id)))


def week_of(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def weekly_override_rates(cards: Sequence[CardFact], items: Iterable[FeedbackFact]) -> dict[str, list[WeekPoint]]:
    """Per rule, per week in which some of its cards got feedback: the override rate of that week's cards."""
    latest = latest_outcomes(items)
    tally: dict[str, dict[date, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for card in cards:
        answer = latest.get(card.card_uuid)
        if answer is None:
            continue
        cell = tally[card.rule_id][week_of(card.started_at)]
        cell[0] += answer.outcome == "overridden"
        cell[1] += 1
    return {
        rule: [WeekPoint(week, over / n, n) for week, (over, n) in sorted(weeks.items())]
        for rule, weeks in sorted(tally.items())
    }


# -- loading --------------------------------------------------------------------------------------------------------
def _since(column: Any, since: datetime | None) -> ColumnElement[bool]:
    return column >= since if since is not None else true()


def load_facts(engine: Engine, since: datetime | None) -> tuple[list[CardFact], list[FeedbackFact]]:
    """Cards issued in calls started at or after ``since`` (all when None), and the feedback on those cards."""
    window = _since(hook_calls.c.started_at, since)
    card_query = (
        select(
            call_cards.c.rule_id,
            call_cards.c.card_uuid,
            hook_calls.c.id,
            hook_calls.c.started_at,
            hook_calls.c.latency_ms,
        )
        .join(hook_calls, hook_calls.c.id == call_cards.c.call_id)
        .where(window)
    )
    feedback_query = (
        select(
            feedback.c.card_uuid,
            feedback.c.outcome,
            feedback.c.outcome_timestamp,
            feedback.c.received_at,
            feedback.c.override_code,
            feedback.c.override_system,
            feedback.c.override_display,
        )
        .join(call_cards, call_cards.c.card_uuid == feedback.c.card_uuid)
        .join(
            hook_calls,
            and_(hook_calls.c.id == call_cards.c.call_id, hook_calls.c.service_id == feedback.c.service_id),
        )
        .where(window)
    )
    with engine.connect() as conn:
        cards = [CardFact(*row) for row in conn.execute(card_query)]
        items = [FeedbackFact(*row) for row in conn.execute(feedback_query)]
    return cards, items


def build_report(engine: Engine, since: datetime | None, now: datetime) -> tuple[Report, dict[str, list[WeekPoint]]]:
    """The report and the weekly series for the plot."""
    cards, items = load_facts(engine, since)
    call_window = _since(hook_calls.c.started_at, since)
    unknown_window = _since(feedback.c.received_at, since)
    with engine.connect() as conn:
        calls = conn.execute(select(func.count()).select_from(hook_calls).where(call_window)).scalar_one()
        failed = conn.execute(
            select(func.count()).select_from(hook_calls).where(call_window, hook_calls.c.status_code >= 400)
        ).scalar_one()
        unknown = conn.execute(
            select(func.count()).select_from(feedback).where(unknown_window, feedback.c.unknown_card.is_(True))
        ).scalar_one()
    report = Report(
        generated_at=now,
        since=since,
        calls=calls,
        failed_calls=failed,
        unknown_card_feedback=unknown,
        rules=compute_figures(cards, items),
    )
    return report, weekly_override_rates(cards, items)


# -- renderers (pure) -----------------------------------------------------------------------------------------------
def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render_table(report: Report) -> str:
    window = f"since {report.since.isoformat()}" if report.since else "all time"
    lines = [
        f"Override report, hook calls {window}: {report.calls} calls ({report.failed_calls} failed), "
        f"{report.unknown_card_feedback} feedback items for unknown cards",
        "",
    ]
    header = (
        "rule",
        "fired",
        "feedback",
        "accepted",
        "overridden",
        "override rate",
        "median latency",
        "top override reasons",
    )
    rows = [
        (
            r.rule_id,
            str(r.fired),
            str(r.with_feedback),
            str(r.accepted),
            str(r.overridden),
            _pct(r.override_rate),
            _ms(r.median_latency_ms),
            "; ".join(f"{reason.label} ({reason.count})" for reason in r.top_override_reasons) or "-",
        )
        for r in report.rules
    ]
    if not rows:
        return "\n".join([*lines, "No cards were issued in this period."]) + "\n"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [cell.rjust(width) for cell, width in zip(cells[1:-1], widths[1:], strict=True)]
        return "  ".join([first, *middle, cells[-1]]).rstrip()

    lines += [line(header), line(["-" * w for w in widths] + ["-" * len(header[-1])])]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"


CSV_COLUMNS: Final = (
    "rule_id",
    "fired",
    "with_feedback",
    "accepted",
    "overridden",
    "override_rate",
    "median_latency_ms",
    *(f"reason_{i}_{part}" for i in range(1, TOP_REASONS + 1) for part in ("code", "display", "count")),
)


def render_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in report.rules:
        reasons: list[Any] = []
        for i in range(TOP_REASONS):
            if i < len(r.top_override_reasons):
                reason = r.top_override_reasons[i]
                reasons += [reason.code or "", reason.display or "", reason.count]
            else:
                reasons += ["", "", ""]
        writer.writerow(
            [
                r.rule_id,
                r.fired,
                r.with_feedback,
                r.accepted,
                r.overridden,
                "" if r.override_rate is None else f"{r.override_rate:.4f}",
                "" if r.median_latency_ms is None else f"{r.median_latency_ms:.1f}",
                *reasons,
            ]
        )
    return buffer.getvalue()


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "generatedAt": report.generated_at.isoformat(),
        "since": report.since.isoformat() if report.since else None,
        "calls": report.calls,
        "failedCalls": report.failed_calls,
        "unknownCardFeedback": report.unknown_card_feedback,
        "rules": [
            {
                "ruleId": r.rule_id,
                "fired": r.fired,
                "withFeedback": r.with_feedback,
                "accepted": r.accepted,
                "overridden": r.overridden,
                "overrideRate": r.override_rate,
                "medianLatencyMs": r.median_latency_ms,
                "topOverrideReasons": [asdict(reason) for reason in r.top_override_reasons],
            }
            for r in report.rules
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


RENDERERS: Final = {"table": render_table, "csv": render_csv, "json": render_json}

# Colour-blind-safe palette (Okabe-Ito), then greys.
_COLOURS: Final = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def render_svg(series: dict[str, list[WeekPoint]], *, title: str = "Override rate per rule, by week") -> str:
    """A self-contained SVG line chart: x = week, y = override rate (0-100 %), one line per rule."""
    width, height = 900, 420
    left, right, top, bottom = 60, 260, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    weeks = sorted({p.week for points in series.values() for p in points})
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{left}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for pct in (0, 25, 50, 75, 100):  # y axis and grid
        y = top + plot_h * (1 - pct / 100)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')
    if not weeks:
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">no feedback</text>')
        return "\n".join([*out, "</svg>"]) + "\n"
    first, span = weeks[0], max((weeks[-1] - weeks[0]).days, 1)

    pad = 20  # keep the first and last points off the axis

    def x_of(week: date) -> float:
        return left + (plot_w / 2 if len(weeks) == 1 else pad + (plot_w - 2 * pad) * (week - first).days / span)

    step = max(1, len(weeks) // 8)
    for week in weeks[::step]:  # x axis labels
        out.append(f'<text x="{x_of(week):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{week.isoformat()}</text>')
    axis = "week of the hook call (Monday, UTC)"
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{axis}</text>')
    for i, (rule, points) in enumerate(sorted(series.items())):
        colour = _COLOURS[i % len(_COLOURS)]
        coords = [(x_of(p.week), top + plot_h * (1 - p.override_rate), p) for p in points]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
        out.append(f'<g class="rule" data-rule="{escape(rule)}">')
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y, p in coords:
            tip = f"{rule}, week of {p.week.isoformat()}: {p.override_rate * 100:.0f}% of {p.with_feedback} overridden"
            dot = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
            out.append(f"{dot}<title>{escape(tip)}</title></circle>")
        legend_y = top + 16 * i
        out.append(f'<rect x="{left + plot_w + 20}" y="{legend_y}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{left + plot_w + 38}" y="{legend_y + 10}">{escape(rule)}</text>')
        out.append("</g>")
    return "\n".join([*out, "</svg>"]) + "\n"
