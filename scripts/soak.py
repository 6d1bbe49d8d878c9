#!/usr/bin/env python3
"""Soak test: drive the real service (uvicorn, its own process) with concurrent mixed requests for a bounded time.

    .venv/bin/python scripts/soak.py --seconds 30            # human-readable report; exit 0 = passed
    .venv/bin/python scripts/soak.py --seconds 5 --json      # the report as JSON on stdout (CI, tests)

What it does, all on 127.0.0.1:

1. starts a small fake FHIR server (a thread in this process) for the fallback-fetch requests: one patient with
   an active oxycodone order, Conditions in two pages, and one patient whose Condition search answers 500;
2. starts the service with ``python -m cds_service serve`` on a free port, auth off, with a temporary config
   (fallback fetch allowed to loopback, a 256 KiB body limit, the feedback store in a temporary directory);
3. runs ``--workers`` concurrent clients for ``--warmup-seconds`` (not measured), then for ``--seconds``, each
   sending a weighted random mix: valid order-sign calls with prefetch (several patient shapes), order-select
   drafts without a medication, medication-prescribe, malformed JSON, a wrong hook, a missing prefetch with and
   without a fhirServer (fallback fetch, 412), a body over the limit (413), feedback posts and discovery;
4. reports requests, requests/s, the status histogram, unexpected results (any 5xx, a status other than the one
   that request must get, a transport error, or a 200 without the card it must carry), p50/p95/p99 latency, and
   the server's RSS (``/proc/<pid>/status`` VmRSS) at start, after the warm-up and at the end.

Exit status: 0 when there was no unexpected result and RSS grew by at most ``--max-rss-growth-mb`` (default 50)
between the end of the warm-up and the end; 1 otherwise; 2 when the service or the fake server could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
BODY_LIMIT = 256 * 1024
PLACEHOLDER = "00000000-0000-4000-8000-00000000beef"


# ---------------------------------------------------------------------------------------------- fake FHIR server


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


class FakeFhir(BaseHTTPRequestHandler):
    """``/fhir/<Type>?patient=<id>``: patient ``soak-opioid`` has an active oxycodone order and Conditions on two
    pages; patient ``soak-broken`` gets 500 for its Condition search; every other search is empty."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
    base = ""  # set once the port is known

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the service closed a pooled connection
            super().handle()

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        patient = (query.get("patient") or [""])[0]
        if len(parts) == 3 and parts[1] == "Patient":
            self._json(200, {"resourceType": "Patient", "id": parts[2], "gender": "male", "birthDate": "1980-01-01"})
            return
        rtype = parts[1] if len(parts) > 1 else ""
        if patient == "soak-broken" and rtype == "Condition":
            self._json(500, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]})
            return
        if patient == "soak-opioid" and rtype == "MedicationRequest":
            order = {
                "resourceType": "MedicationRequest",
                "id": "oxy-1",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/soak-opioid"},
                "authoredOn": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * 86400)),
                "medicationCodeableConcept": _cc(RXNORM, "1049621", "oxycodone hydrochloride 5 MG Oral Tablet"),
            }
            self._json(200, _searchset([order]))
            return
        if patient == "soak-opioid" and rtype == "Condition":
            page = int((query.get("page") or ["1"])[0])
            condition = {
                "resourceType": "Condition",
                "id": f"htn-{page}",
                "subject": {"reference": "Patient/soak-opioid"},
                "code": _cc(ICD10, "I10", "Essential hypertension"),
                "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            }
            nxt = f"{self.base}/Condition?patient=soak-opioid&page=2" if page == 1 else None
            self._json(200, _searchset([condition], nxt))
            return
        self._json(200, _searchset([]))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops bursts of connects: a 1 s SYN retry each


def serve_fake_fhir() -> int:
    """``--fake-fhir``: serve until stdin closes; the first line on stdout is the base URL."""
    server = _Server(("127.0.0.1", 0), FakeFhir)
    FakeFhir.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print(FakeFhir.base, flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies): time to go
    server.shutdown()
    server.server_close()
    return 0


def start_fake_fhir() -> tuple[subprocess.Popen[str], str]:
    """The fake FHIR server in its own process, so that it does not share a GIL with the load driver."""
    proc = subprocess.Popen(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--fake-fhir"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    base = proc.stdout.readline().strip()
    if not base.startswith("http://127.0.0.1:"):
        stop_fake_fhir(proc)
        raise RuntimeError(f"the fake FHIR server did not start (said {base!r})")
    return proc, base


def stop_fake_fhir(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


# --------------------------------------------------------------------------------------------------- requests


def _day(offset: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset * 86400))


def _draft(medication: bool = True) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "draft-ntx",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/soak"},
        "authoredOn": _day(0),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}],
            }
        ],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"}},
    }
    if medication:
        res["medicationCodeableConcept"] = _cc(RXNORM, "1483744", "naltrexone hydrochloride 50 MG Oral Tablet")
    return res


PREFETCH_KEYS = (
    "medicationRequests", "medicationStatements", "medicationDispenses", "urineScreens", "liverTests",
    "pregnancyObservations", "lactationObservations", "renalObservations", "conditions", "allergies",
)  # fmt: skip


def _prefetch(**keys: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _searchset(keys.get(k, [])) for k in PREFETCH_KEYS}
    out["patient"] = {"resourceType": "Patient", "id": "soak", "gender": "female", "birthDate": "1990-01-01"}
    return out


def _hook(hook: str, *, patient: str = "soak", drafts: list[dict[str, Any]] | None = None, **extra: Any) -> bytes:
    orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts or []]}
    context: dict[str, Any] = {"userId": "Practitioner/soak", "patientId": patient}
    context["medications" if hook == "medication-prescribe" else "draftOrders"] = orders
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-ntx"]
    return json.dumps({"hook": hook, "hookInstance": PLACEHOLDER, "context": context, **extra}).encode()


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    method: str
    path: str
    body: bytes | None
    status: int
    must_have: str | None = None  # a rule id the 200 answer must carry
    must_not_have: str | None = None


def request_mix(fhir_base: str) -> list[Kind]:
    sign, select = "/cds-services/naltrexone-order-sign", "/cds-services/naltrexone-order-select"
    prescribe = "/cds-services/naltrexone-medication-prescribe"
    oxycodone = {
        "resourceType": "MedicationRequest", "id": "oxy", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/soak"}, "authoredOn": _day(-10),
        "medicationCodeableConcept": _cc(RXNORM, "1049621", "oxycodone hydrochloride 5 MG Oral Tablet"),
    }  # fmt: skip
    alt = {
        "resourceType": "Observation", "id": "alt", "status": "final", "subject": {"reference": "Patient/soak"},
        "code": _cc(LOINC, "1742-6", "Alanine aminotransferase"), "effectiveDateTime": _day(-3) + "T09:00:00Z",
        "valueQuantity": {"value": 250, "unit": "U/L"}, "referenceRange": [{"high": {"value": 40, "unit": "U/L"}}],
    }  # fmt: skip
    urine = {
        "resourceType": "Observation", "id": "uds", "status": "final", "subject": {"reference": "Patient/soak"},
        "code": _cc(LOINC, "19295-5", "Opiates [Presence] in Urine by Screen method"),
        "effectiveDateTime": _day(-1) + "T09:00:00Z", "valueCodeableConcept": _cc(SNOMED, "260385009", "Negative"),
    }  # fmt: skip
    history = [dict(oxycodone, id=f"old-{i}", status="completed", authoredOn=_day(-400 - i)) for i in range(300)]
    feedback = {
        "feedback": [
            {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z",
             "overrideReason": {"reason": {"system": "urn:naltrexone-cds:override-reason", "code": "will-monitor",
                                           "display": "Will monitor"}}},
        ]
    }  # fmt: skip
    missing = {k: v for k, v in _prefetch().items() if k != "conditions"}
    return [
        Kind(
            "sign-clean",
            10,
            "POST",
            sign,
            _hook("order-sign", drafts=[_draft()], prefetch=_prefetch()),
            200,
            must_have="overdose-risk",
        ),
        Kind(
            "sign-opioid",
            10,
            "POST",
            sign,
            _hook("order-sign", drafts=[_draft()], prefetch=_prefetch(medicationRequests=[oxycodone])),
            200,
            must_have="opioid-active",
        ),
        Kind(
            "sign-labs",
            8,
            "POST",
            sign,
            _hook("order-sign", drafts=[_draft()], prefetch=_prefetch(liverTests=[alt], urineScreens=[urine])),
            200,
            must_have="liver-enzymes-elevated",
        ),
        Kind(
            "sign-long-history",
            3,
            "POST",
            sign,
            _hook("order-sign", drafts=[_draft()], prefetch=_prefetch(medicationRequests=history)),
            200,
        ),
        Kind(
            "select-no-medication",
            8,
            "POST",
            select,
            _hook("order-select", drafts=[_draft(medication=False)], prefetch=_prefetch()),
            200,
        ),
        Kind(
            "prescribe",
            4,
            "POST",
            prescribe,
            _hook("medication-prescribe", drafts=[_draft()], prefetch=_prefetch()),
            200,
            must_have="overdose-risk",
        ),
        Kind(
            "fallback",
            8,
            "POST",
            sign,
            _hook("order-sign", patient="soak-opioid", drafts=[_draft()], fhirServer=fhir_base),
            200,
            must_have="opioid-active",
            must_not_have="data-unavailable",
        ),
        Kind(
            "fallback-broken",
            4,
            "POST",
            sign,
            _hook("order-sign", patient="soak-broken", drafts=[_draft()], prefetch=missing, fhirServer=fhir_base),
            200,
            must_have="data-unavailable",
        ),
        Kind("missing-prefetch-no-server", 4, "POST", sign, _hook("order-sign", drafts=[_draft()]), 412),
        Kind("malformed-json", 5, "POST", sign, b'{"hook": "order-sign", "context": {', 400),
        Kind("wrong-hook", 4, "POST", sign, _hook("order-select", drafts=[_draft()], prefetch=_prefetch()), 400),
        Kind("over-body-limit", 2, "POST", sign, b'{"hook": "' + b"x" * (BODY_LIMIT + 1024) + b'"}', 413),
        Kind("feedback", 6, "POST", f"{sign}/feedback", json.dumps(feedback).encode(), 200),
        Kind("discovery", 4, "GET", "/cds-services", None, 200),
    ]


# ------------------------------------------------------------------------------------------------- the driver


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    unexpected_count: int = 0

    def bad(self, message: str) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 20:
            self.unexpected.append(message)


async def _one(client: httpx.AsyncClient, kind: Kind, results: Results | None) -> None:
    body = kind.body.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode()) if kind.body else None
    started = time.perf_counter()
    try:
        if kind.method == "GET":
            response = await client.get(kind.path)
        else:
            response = await client.post(kind.path, content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        if results is not None:
            results.bad(f"{kind.name}: {type(exc).__name__}: {exc}")
            results.statuses["error"] += 1
        return
    elapsed = time.perf_counter() - started
    if results is None:
        return
    results.latencies.append(elapsed)
    results.by_kind.setdefault(kind.name, []).append(elapsed)
    results.statuses[str(response.status_code)] += 1
    results.kinds[kind.name] += 1
    if response.status_code != kind.status:
        results.bad(f"{kind.name}: HTTP {response.status_code}, expected {kind.status}: {response.text[:300]}")
        return
    if kind.must_have or kind.must_not_have:
        topics = {c.get("source", {}).get("topic", {}).get("code") for c in response.json().get("cards", [])}
        if kind.must_have and kind.must_have not in topics:
            results.bad(f"{kind.name}: no {kind.must_have} card: {sorted(map(str, topics))}")
        if kind.must_not_have and kind.must_not_have in topics:
            results.bad(f"{kind.name}: unexpected {kind.must_not_have} card")


async def drive(
    base_url: str, mix: list[Kind], workers: int, seconds: float, results: Results | None, seed: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 - a load mix, not a secret
    weights = [k.weight for k in mix]
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    timeout = httpx.Timeout(30.0)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, trust_env=False) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                await _one(client, rng.choices(mix, weights)[0], results)

        await asyncio.gather(*(worker() for _ in range(workers)))


# ------------------------------------------------------------------------------------------ service process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def write_config(directory: Path, fhir_timeout: float) -> Path:
    config = directory / "soak.toml"
    store = (directory / "soak-feedback.sqlite3").as_posix()
    config.write_text(
        "\n".join(
            [
                "[auth]",
                "required = false",
                "[fhir]",
                'allowed_servers = ["http://127.0.0.1"]',
                f"timeout_s = {fhir_timeout}",
                "[limits]",
                f"max_body_bytes = {BODY_LIMIT}",
                "[feedback]",
                f'database_url = "sqlite:///{store}"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


def start_service(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "cds_service", "serve", "--config", str(config), "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [*argv, "--port", str(port)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0, trust_env=False).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"the service did not answer /healthz within 60 s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# ------------------------------------------------------------------------------------------------------ main


def run(args: argparse.Namespace, say: Callable[[str], None]) -> tuple[int, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cds-soak-") as tmp:
        directory = Path(tmp)
        try:
            fake, fhir_base = start_fake_fhir()
        except RuntimeError as exc:
            say(f"soak: {exc}")
            return 2, {"error": str(exc)}
        try:
            proc, base = start_service(write_config(directory, args.fhir_timeout), directory / "service.log")
        except RuntimeError as exc:
            stop_fake_fhir(fake)
            say(f"soak: {exc}")
            return 2, {"error": str(exc)}
        try:
            mix = request_mix(fhir_base)
            rss_start = rss_mb(proc.pid)
            say(f"soak: service pid {proc.pid} on {base}; {args.workers} workers; warm-up {args.warmup_seconds:g} s")
            asyncio.run(drive(base, mix, args.workers, args.warmup_seconds, None, args.seed))
            rss_warm = rss_mb(proc.pid)
            say(f"soak: measuring for {args.seconds:g} s")
            results = Results()
            started = time.monotonic()
            asyncio.run(drive(base, mix, args.workers, args.seconds, results, args.seed + 1))
            wall = time.monotonic() - started
            rss_end = rss_mb(proc.pid)
            alive = proc.poll() is None
        finally:
            stop(proc)
            stop_fake_fhir(fake)
        log_tail = (directory / "service.log").read_text(errors="replace")[-2000:]

    latencies = sorted(results.latencies)
    growth = rss_end - rss_warm if rss_end is not None and rss_warm is not None else None
    report: dict[str, Any] = {
        "seconds": round(wall, 2),
        "workers": args.workers,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1) if wall else 0.0,
        "statuses": dict(sorted(results.statuses.items())),
        "kinds": dict(sorted(results.kinds.items())),
        "latency_ms_by_kind": {
            name: {"p50": round(percentile(sorted(v), 50) * 1000, 1), "p99": round(percentile(sorted(v), 99) * 1000, 1)}
            for name, v in sorted(results.by_kind.items())
        },
        "unexpected": results.unexpected_count,
        "unexpected_samples": results.unexpected,
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p95": round(percentile(latencies, 95) * 1000, 1),
            "p99": round(percentile(latencies, 99) * 1000, 1),
            "max": round((latencies[-1] if latencies else 0.0) * 1000, 1),
        },
        "rss_mb": {
            "start": rss_start and round(rss_start, 1),
            "after_warmup": rss_warm and round(rss_warm, 1),
            "end": rss_end and round(rss_end, 1),
            "growth": growth and round(growth, 1),
            "bound": args.max_rss_growth_mb,
        },
        "service_alive_at_end": alive,
    }
    failures = []
    if results.unexpected_count:
        failures.append(f"{results.unexpected_count} unexpected results")
    if not latencies:
        failures.append("no request completed")
    if growth is not None and growth > args.max_rss_growth_mb:
        failures.append(f"RSS grew {growth:.1f} MB (bound {args.max_rss_growth_mb} MB)")
    if not alive:
        failures.append("the service died during the run")
    report["failures"] = failures
    if failures:
        report["service_log_tail"] = log_tail
    return (1 if failures else 0), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration (default 30)")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="unmeasured warm-up (default 3)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0, help="RSS growth bound (default 50)")
    parser.add_argument("--fhir-timeout", type=float, default=2.0, help="service's [fhir] timeout_s (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request mix")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--fake-fhir", action="store_true", help=argparse.SUPPRESS)  # the child process mode
    args = parser.parse_args(argv)
    if args.fake_fhir:
        return serve_fake_fhir()

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    code, report = run(args, say)
    if args.json:
        print(json.dumps(report, indent=2))
        return code
    if "error" in report:
        return code
    lat, rss = report["latency_ms"], report["rss_mb"]
    say(f"requests     {report['requests']} in {report['seconds']} s ({report['requests_per_second']}/s)")
    say(f"statuses     {report['statuses']}")
    say("by kind      requests, p50 / p99 ms")
    for name, count in report["kinds"].items():
        by = report["latency_ms_by_kind"][name]
        say(f"  {name:28} {count:6}   {by['p50']:7} / {by['p99']}")
    say(f"latency ms   p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}")
    say(f"RSS MB       start {rss['start']}  after warm-up {rss['after_warmup']}  end {rss['end']}  "
        f"growth {rss['growth']} (bound {rss['bound']})")  # fmt: skip
    say(f"unexpected   {report['unexpected']}")
    for sample in report["unexpected_samples"]:
        say(f"  - {sample}")
    say("soak: PASSED" if code == 0 else "soak: FAILED: " + "; ".join(report["failures"]))
    if code and report.get("service_log_tail"):
        say("service log (tail):\n" + report["service_log_tail"])
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
