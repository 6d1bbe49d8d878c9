"""``cds-service check PATIENT.json``: the cards the service gives one patient file, in the terminal or as JSON.

For scripting and CI: the patient's data (a sandbox fixture or any FHIR R4 patient Bundle) is sent as prefetch to
the real service, run in-process (no network, no server), with a naltrexone draft order built from the options.

Exit codes: 0 = no critical card; 1 = at least one critical card; 2 = usage or input error (bad option, unreadable
file, no Patient in it, the service refused the request).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cds_service.sandbox.orders import FREQUENCIES, PRODUCTS, SERVICE_FOR_HOOK, default_choice, describe, draft_order
from cds_service.sandbox.patients import OrderChoice, PatientFileError, SandboxPatient, build_store, load_file

EXIT_OK, EXIT_CRITICAL, EXIT_USAGE = 0, 1, 2

_STYLE = {
    "critical": ("\N{HEAVY MULTIPLICATION X}", "CRITICAL", "\033[1;31m"),
    "warning": ("\N{BLACK UP-POINTING TRIANGLE}", "WARNING", "\033[1;33m"),
    "info": ("\N{INFORMATION SOURCE}", "INFO", "\033[1;34m"),
}
_RESET, _DIM, _BOLD = "\033[0m", "\033[2m", "\033[1m"
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


class CheckError(Exception):
    """An input problem worth one line on stderr and exit code 2."""


@contextmanager
def _quiet_service_logs() -> Iterator[None]:
    """The in-process service warns that auth is off; that is expected here and not worth printing."""
    logger = logging.getLogger("cds_service")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _settings(config: Path | None) -> Any:
    from cds_service.auth.settings import AuthSettings
    from cds_service.config import ConfigError, Settings, load_settings

    if config is None:
        return Settings.development()
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise CheckError(str(exc)) from None
    # Only the policy and limits matter here: the call never leaves the process, so no client to authenticate.
    return settings.model_copy(update={"auth": AuthSettings(required=False)})


def _pick_patient(patients: list[SandboxPatient], wanted: str | None, source: Path) -> SandboxPatient:
    if wanted:
        for p in patients:
            if p.id == wanted:
                return p
        raise CheckError(f"{source}: no Patient with id {wanted!r} (found: {', '.join(p.id for p in patients)})")
    if not patients:
        raise CheckError(f"{source}: holds no Patient resource")
    if len(patients) > 1:
        raise CheckError(f"{source}: holds {len(patients)} patients; choose one with --patient-id")
    return patients[0]


def _choice(args: argparse.Namespace, patient: SandboxPatient) -> OrderChoice:
    suggested = patient.order
    product = args.product or (suggested.product if suggested else "oral")
    base = suggested if suggested and suggested.product == product else default_choice(product)
    changes: dict[str, Any] = {}
    if args.dose is not None:
        changes["dose"] = args.dose
    if args.frequency is not None:
        changes["frequency"] = args.frequency
    if args.days_supply is not None:
        changes["supply_days"] = args.days_supply
    if args.refills is not None:
        changes["refills"] = args.refills
    return replace(base, **changes)


def evaluate(args: argparse.Namespace) -> tuple[SandboxPatient, OrderChoice, dict[str, Any]]:
    """Load the file, build the request and run it through the service in-process; returns the response JSON."""
    from fastapi.testclient import TestClient

    from cds_service.app import create_app
    from cds_service.sandbox.fhir_server import build_prefetch
    from cds_service.sandbox.orders import hook_request

    settings = _settings(args.config)
    now = datetime.now(UTC)
    try:
        loaded = load_file(args.patient, now.date(), roll="none" if args.keep_dates else "anchor")
    except PatientFileError as exc:
        raise CheckError(str(exc)) from None
    patient = _pick_patient(loaded.patients, args.patient_id, args.patient)
    store, _ = build_store([loaded])
    choice = _choice(args, patient)
    draft = draft_order(choice, patient.id, now.date(), "check-draft-1")
    body = hook_request(args.hook, patient.id, draft, prefetch=build_prefetch(store, patient.id))
    with _quiet_service_logs(), TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(f"/cds-services/{SERVICE_FOR_HOOK[args.hook]}", json=body)
    if response.status_code != 200:
        try:
            issue = response.json()["issue"][0]["diagnostics"]
        except (ValueError, KeyError, IndexError, TypeError):
            issue = response.text[:300]
        raise CheckError(f"the service answered HTTP {response.status_code}: {issue}")
    return patient, choice, response.json()


# -- terminal output ---------------------------------------------------------------------------------------------
class _Painter:
    def __init__(self, stream: TextIO, mode: str) -> None:
        tty = hasattr(stream, "isatty") and stream.isatty()
        self.symbols = mode == "always" or (mode == "auto" and tty)
        self.colour = mode == "always" or (mode == "auto" and tty and not os.environ.get("NO_COLOR"))

    def paint(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.colour else text

    def badge(self, indicator: str) -> str:
        symbol, word, style = _STYLE.get(indicator, ("?", indicator.upper(), ""))
        return self.paint(f"{symbol} {word}" if self.symbols else f"[{word}]", style)


def _plain_markdown(text: str) -> str:
    text = _LINK.sub(r"\1 <\2>", text)
    return text.replace("**", "").replace("`", "")


def _blocks(text: str) -> Iterator[tuple[str | None, str]]:
    """Markdown paragraphs and list items as (bullet or None, text), soft line breaks joined; None text = gap."""
    bullet: str | None = None
    words: list[str] = []
    for raw in _plain_markdown(text).splitlines():
        stripped = raw.strip()
        starts_item = re.match(r"^([-*]|\d+\.)\s+", stripped)
        if (not stripped or starts_item) and words:
            yield bullet, " ".join(words)
            bullet, words = None, []
        if not stripped:
            yield None, ""
            continue
        if starts_item:
            bullet, stripped = starts_item.group(0), stripped[starts_item.end() :]
        words.append(stripped)
    if words:
        yield bullet, " ".join(words)


def _wrap(text: str, indent: str, width: int) -> list[str]:
    lines: list[str] = []
    for bullet, body in _blocks(text):
        if not body:
            if lines and lines[-1] != "":
                lines.append("")
            continue
        first = rest = indent
        if bullet:
            first, rest = indent + "  " + bullet, indent + "  " + " " * len(bullet)
        lines.extend(
            textwrap.wrap(body, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False) or [first]
        )
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def render_text(
    patient: SandboxPatient, choice: OrderChoice, hook: str, response: dict[str, Any], stream: TextIO, colour: str
) -> None:
    painter = _Painter(stream, colour)
    width = max(60, min(100, shutil.get_terminal_size((100, 24)).columns - 2))
    cards = response.get("cards", [])
    counts = {k: sum(1 for c in cards if c.get("indicator") == k) for k in ("critical", "warning", "info")}
    gender = patient.resource.get("gender") or "gender unknown"
    born = patient.resource.get("birthDate", "?")
    plural = "s" if len(cards) != 1 else ""
    tally = f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info"
    out = [
        f"{painter.paint('Patient', _BOLD)}  {patient.name} ({patient.id}), {gender}, born {born}",
        f"{painter.paint('Order', _BOLD)}    {describe(choice)}",
        f"{painter.paint('Hook', _BOLD)}     {hook} -> {SERVICE_FOR_HOOK[hook]}: {len(cards)} card{plural} ({tally})",
    ]
    for card in cards:
        out.append("")
        out.append(f"{painter.badge(card.get('indicator', '?'))}  {painter.paint(card.get('summary', ''), _BOLD)}")
        source = card.get("source", {})
        topic = source.get("topic", {}).get("code")
        meta = " · ".join(x for x in (f"rule {topic}" if topic else None, source.get("label")) if x)
        if source.get("url"):
            meta += f" <{source['url']}>"
        out.append(painter.paint("    " + meta, _DIM))
        if card.get("detail"):
            out.append("")
            out.extend(_wrap(card["detail"], "    ", width))
        if card.get("suggestions"):
            out.extend(["", "    Suggestions:"])
            for s in card["suggestions"]:
                actions = "; ".join(a.get("description", a.get("type", "")) for a in s.get("actions", []))
                recommended = " (recommended)" if s.get("isRecommended") else ""
                out.append(f"      * {s.get('label')}{recommended}" + (f" -> {actions}" if actions else ""))
        if card.get("overrideReasons"):
            out.extend(["", "    Override reasons:"])
            out.extend(f"      - {r.get('display')}" for r in card["overrideReasons"])
        for link in card.get("links", []):
            out.append(f"    Link: {link.get('label')} <{link.get('url')}>")
    if not cards:
        out.extend(["", "No cards: the service found nothing to say about this order."])
    stream.write("\n".join(out) + "\n")


def run(args: argparse.Namespace) -> int:
    try:
        patient, choice, response = evaluate(args)
    except CheckError as exc:
        print(f"cds-service check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(response, indent=2, ensure_ascii=False) + "\n")
    else:
        render_text(patient, choice, args.hook, response, sys.stdout, args.color)
    critical = any(c.get("indicator") == "critical" for c in response.get("cards", []))
    return EXIT_CRITICAL if critical else EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "check",
        help="print the cards the service gives one patient file (exit 1 if any is critical)",
        description=(
            "Send one patient (a sandbox fixture or any FHIR R4 patient Bundle) through the service in-process "
            "with a naltrexone draft order, and print the cards. Exit codes: 0 no critical card, 1 a critical "
            "card, 2 usage or input error."
        ),
    )
    p.add_argument("patient", type=Path, metavar="PATIENT.json", help="fixture file or FHIR R4 Bundle with one Patient")
    p.add_argument(
        "--product",
        choices=sorted(PRODUCTS),
        help="naltrexone product (default: the fixture's suggested order, else oral)",
    )
    p.add_argument("--dose", type=float, metavar="MG", help="dose in mg (tablets for combo); default per product")
    p.add_argument("--frequency", choices=list(FREQUENCIES), help="dosing frequency (default per product)")
    p.add_argument("--days-supply", type=int, metavar="DAYS", help="days' supply per fill (default 30; 28 injection)")
    p.add_argument("--refills", type=int, metavar="N", help="number of refills (default 11)")
    p.add_argument("--hook", choices=["order-sign", "order-select"], default="order-sign", help="default order-sign")
    p.add_argument("--patient-id", help="which patient, when the Bundle holds more than one")
    p.add_argument("--keep-dates", action="store_true", help="do not move the file's dates to the present")
    p.add_argument("--json", action="store_true", help="print the raw CDS Hooks response")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="colour and symbols")
    p.add_argument("--config", type=Path, metavar="FILE", help="site config TOML (its [policy] applies)")
    p.set_defaults(handler=run)
