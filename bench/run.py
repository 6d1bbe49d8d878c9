"""The benchmark: the service against a decode-only FastAPI app, in one run, on this machine.

    .venv/bin/python -m bench.run            # full run, about 2 minutes
    .venv/bin/python -m bench.run --quick    # every figure once, short runs (~30 s): proves the script works

Needs ``wrk`` (Debian: ``apt-get install wrk``). Everything listens on 127.0.0.1 only.

What it does, in order:

1. Starts (a) the service (``cds_service.app:app_from_env`` with ``bench/service.toml``, the observers that
   ``create_app`` installs by default) and (b) ``bench/baseline_app.py``, which only reads and decodes the body;
   both under uvicorn with the same settings (uvloop, httptools, same worker count, access log off).
2. Typical order-sign (a realistic ~100-resource chart, ``bench/workloads.py``): maximum throughput of each with
   wrk (runs interleaved, baseline/service, median of the repeats) and the server CPU time per request, then
   p50/p95/p99 at half of each one's maximum with an open-loop generator (``bench/loadgen.py``; latency from the
   scheduled send time).
3. Scaling: the same request with 10, 100, 1,000 and 5,000 resources, one request at a time: the service's time
   per request next to the baseline's and to ``json.loads`` of the same body.
4. Fallback fetch: no prefetch for 6 (then all 11) keys; a local FHIR endpoint (``bench/fake_fhir.py``) answers
   each query after 50 ms; total hook latency in round trips.
5. (full run only) Throughput with 2 workers each, one per core of this machine.
6. Peak RSS per worker; then every target, met or not.

Figures vary with whatever else runs on the machine: each section says how many repeats it took and their spread.
``--variant`` measures changes proposed for other modules (``bench/variants.py``); ``--code DIR`` serves another copy
of ``cds_service`` (before/after). Exit status: 0 when every figure was measured, whether or not targets are met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import loadgen, workloads
from bench.variants import PROCESS_WIDE, VARIANTS

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVICE_PATH = "/cds-services/naltrexone-order-sign"
HOST = "127.0.0.1"
FALLBACK_LATENCY_MS = 50.0
SCALING_SIZES = (10, 100, 1000, 5000)
FALLBACK_ABSENT_6 = (
    "medicationRequests",
    "medicationStatements",
    "medicationDispenses",
    "urineScreens",
    "liverTests",
    "conditions",
)


@dataclass(frozen=True)
class Mode:
    throughput_s: float
    throughput_reps: int
    latency_s: float
    latency_warmup_s: float
    scaling_count: int
    scaling_max_s: float
    fallback_count: int
    two_workers: bool


FULL = Mode(
    throughput_s=5,
    throughput_reps=3,
    latency_s=10,
    latency_warmup_s=1,
    scaling_count=30,
    scaling_max_s=6,
    fallback_count=20,
    two_workers=True,
)
QUICK = Mode(
    throughput_s=1.5,
    throughput_reps=1,
    latency_s=2,
    latency_warmup_s=0.5,
    scaling_count=5,
    scaling_max_s=1.5,
    fallback_count=5,
    two_workers=False,
)


# -- processes ----------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workers: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def worker_pids(self) -> list[int]:
        if self.workers == 1:
            return [self.proc.pid]
        pids = []
        for child in _children(self.proc.pid):
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    pids.append(child)
        return pids

    def rss_mb(self) -> list[tuple[float, float]]:
        """(current, peak) resident set size in MB of each worker process."""
        out = []
        for pid in self.worker_pids():
            status = _proc_status(pid)
            out.append((status.get("VmRSS", 0) / 1024, status.get("VmHWM", 0) / 1024))
        return out


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
    return out


def _uvicorn(app: str, port: int, workers: int, *, factory: bool = False, code: Path = ROOT) -> list[str]:
    """The one server command line, identical for both apps but for the app itself."""
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(code),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return cmd + (["--factory"] if factory else [])


def start(name: str, cmd: list[str], workdir: Path, workers: int, port: int, env: dict[str, str]) -> Server:
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(  # noqa: S603 - fixed argv built above
        cmd,
        cwd=workdir,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, proc, port, workers, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start-up:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200 and (
                workers == 1 or len(server.worker_pids()) == workers
            ):
                time.sleep(0.3 if workers == 1 else 1.0)  # let every worker finish its start-up
                return server
        time.sleep(0.1)
    stop(server)
    raise RuntimeError(f"{name} did not answer /healthz within 30 s:\n{log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)  # our own process group (start_new_session)
            server.proc.wait(timeout=5)


@contextlib.contextmanager
def servers(workdir: Path, workers: int, variants: list[str], code: Path = ROOT) -> Iterator[tuple[Server, Server]]:
    env = {
        "CDS_CONFIG": str(BENCH / "service.toml"),
        "PYTHONHASHSEED": "0",
        "BENCH_VARIANTS": ",".join(variants),
        "PYTHONPATH": str(ROOT),
    }
    factory = "bench.variants:app_from_env" if variants else "cds_service.app:app_from_env"
    started: list[Server] = []
    try:
        started.append(_start_on_free_port("service", factory, workdir, workers, env, True, code))
        if variants:  # the process-wide ones (GC settings) apply to both apps: bench/variants.py
            started.append(
                _start_on_free_port("baseline", "bench.variants:baseline_from_env", workdir, workers, env, True)
            )
        else:
            started.append(_start_on_free_port("baseline", "bench.baseline_app:app", workdir, workers, env, False))
        yield started[0], started[1]
    finally:
        for s in started:
            stop(s)


def _start_on_free_port(
    name: str, app: str, workdir: Path, workers: int, env: dict[str, str], factory: bool, code: Path = ROOT
) -> Server:
    port = _free_port()
    return start(name, _uvicorn(app, port, workers, factory=factory, code=code), workdir, workers, port, env)


# -- load -----------------------------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # server CPU time (user + system, all threads of every worker) per request


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def wrk(server: Server, body_file: Path, seconds: float, connections: int) -> WrkResult:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk_post.lua"),
        server.url + SERVICE_PATH,
    ]
    pids = server.worker_pids()
    cpu_before = _cpu_seconds(pids)
    out = subprocess.run(  # noqa: S603 - fixed argv
        cmd,
        env={**os.environ, "BENCH_BODY": str(body_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    cpu = _cpu_seconds(pids) - cpu_before
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    r = json.loads(line[6:])
    errors = sum(r[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    n = max(1, r["requests"])
    return WrkResult(n / (r["duration_us"] / 1e6), r["p50_us"] / 1000, r["p99_us"] / 1000, errors, cpu * 1000 / n)


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return "1 run"
    med = statistics.median(values)
    return f"{len(values)} runs, spread {100 * (max(values) - min(values)) / med:.0f}% of median"


# -- report ---------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    targets: list[tuple[bool, str, str]] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def target(self, met: bool, name: str, detail: str) -> None:
        self.targets.append((met, name, detail))


def _environment(report: Report, workers: int, variants: list[str], code: Path) -> None:
    from importlib.metadata import version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(  # noqa: S603 - a fixed, read-only git command
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
    os.environ["CDS_CONFIG"] = str(BENCH / "service.toml")
    from cds_service.app import app_from_env

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:  # whatever the default store would create, it is not created here
        os.chdir(tmp)
        try:
            observers = [type(o).__name__ for o in app_from_env().state.observers] or ["none"]
        finally:
            os.chdir(cwd)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]  # noqa: S607
    report.say(f"date        {datetime.now(UTC).isoformat(timespec='seconds')}")
    report.say(f"machine     {os.cpu_count()} CPUs ({cpu}), load average {os.getloadavg()[0]:.2f} at start")
    report.say(
        f"software    Python {platform.python_version()}, uvicorn {version('uvicorn')} (uvloop, httptools), "
        f"fastapi {version('fastapi')}, pydantic {version('pydantic')}, fhir.resources {version('fhir.resources')}, "
        f"orjson {version('orjson')}; {wrk_version.strip()}"
    )
    report.say(
        f"code        commit {commit} plus the working tree" + (f"; service code from {code}" if code != ROOT else "")
    )
    report.say(f"servers     uvicorn --workers {workers} --loop uvloop --http httptools --no-access-log, for both apps")
    report.say(
        f"service     cds_service.app:app_from_env with bench/service.toml; observers installed by default: "
        f"{', '.join(observers)}"
    )
    if variants:
        both = sorted(set(variants) & PROCESS_WIDE)
        report.say(
            f"VARIANT     proposed changes applied to the service (bench/variants.py): {', '.join(variants)}"
            + (f"; to the baseline too (process-wide): {', '.join(both)}" if both else "")
        )
    report.data["environment"] = {"cpus": os.cpu_count(), "cpu": cpu, "commit": commit, "observers": observers}


def _sanity(report: Report, service: Server, baseline: Server, body: bytes) -> None:
    r = httpx.post(service.url + SERVICE_PATH, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"the service answered {r.status_code} to the typical request: {r.text[:500]}")
    cards = [c["source"].get("topic", {}).get("code", "?") for c in r.json()["cards"]]
    b = httpx.post(baseline.url + SERVICE_PATH, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    if b.status_code != 200 or b.json() != {"cards": []}:
        raise RuntimeError(f"the baseline answered {b.status_code}: {b.text[:200]}")
    report.say(f"typical request: {len(body):,} bytes; the service answers {len(cards)} card(s): {', '.join(cards)}")
    report.data["typical_cards"] = cards


def _throughput(
    report: Report, service: Server, baseline: Server, body_file: Path, mode: Mode, workers: int, label: str
) -> tuple[float, float]:
    conns = 8 * workers
    for server in (baseline, service):  # warm-up: connections, lazy imports, allocator
        wrk(server, body_file, 1, conns)
    runs: dict[str, list[WrkResult]] = {"baseline": [], "service": []}
    for _ in range(mode.throughput_reps):
        for server in (baseline, service):
            runs[server.name].append(wrk(server, body_file, mode.throughput_s, conns))
    b = statistics.median(r.rps for r in runs["baseline"])
    s = statistics.median(r.rps for r in runs["service"])
    b_cpu = statistics.median(r.cpu_ms for r in runs["baseline"])
    s_cpu = statistics.median(r.cpu_ms for r in runs["service"])
    errors = sum(r.errors for rs in runs.values() for r in rs)
    report.say(
        f"{label}: wrk -t1 -c{conns}, {mode.throughput_s:g} s per run, runs interleaved; "
        "CPU = server CPU time per request, all threads"
    )
    for name, rps, cpu in (("baseline", b, b_cpu), ("service", s, s_cpu)):
        report.say(
            f"  {name:<9} {rps:8,.0f} req/s ({spread([r.rps for r in runs[name]])})   "
            f"CPU {cpu:6.2f} ms/request ({spread([r.cpu_ms for r in runs[name]])})"
        )
    pair = [sv.rps / bl.rps for sv, bl in zip(runs["service"], runs["baseline"], strict=True)]
    report.say(
        f"  ratio service/baseline: throughput {s / b:.1%} (per pair: {', '.join(f'{p:.1%}' for p in pair)}); "
        f"inverse CPU per request {b_cpu / s_cpu:.1%}" + (f"  NON-200/socket errors: {errors}" if errors else "")
    )
    report.data.setdefault("cpu_ms_per_request", {})[label] = {"service": s_cpu, "baseline": b_cpu}
    return s, b


def _latency(
    report: Report, server: Server, body: bytes, max_rps: float, mode: Mode, fraction: float
) -> loadgen.Latencies:
    rate = max_rps * fraction
    lat = loadgen.open_loop(
        HOST, server.port, SERVICE_PATH, body, rate=rate, duration_s=mode.latency_s, warmup_s=mode.latency_warmup_s
    )
    report.say(
        f"  {server.name:<9} at {rate:7,.0f} req/s: p50 {lat.pct(50) * 1000:6.2f} ms  p95 {lat.pct(95) * 1000:6.2f} ms"
        f"  p99 {lat.pct(99) * 1000:6.2f} ms  max {max(lat.seconds, default=0) * 1000:6.1f} ms"
        f"  ({lat.sent:,} requests, {lat.connections} connections"
        + (f", errors: {lat.error_kinds}" if lat.errors else "")
        + ")"
    )
    if lat.errors:
        report.say(f"    last lines of the {server.name} log: {server.log.read_text()[-600:]!r}")
    if not lat.seconds:
        raise RuntimeError(f"no request to the {server.name} succeeded at {rate:,.0f} req/s: {lat.error_kinds}")
    return lat


def _rss(report: Report, label: str, *servers_: Server) -> dict[str, float]:
    peaks = {}
    for s in servers_:
        rss = s.rss_mb()
        peak = max((p for _, p in rss), default=0.0)
        peaks[s.name] = peak
        shown = ", ".join(f"{cur:.0f} MB now / {p:.0f} MB peak" for cur, p in rss)
        report.say(f"  {s.name:<9} {label}: {shown}")
    return peaks


def _time_call(fn: Any, arg: Any, min_total_s: float = 0.3, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` batches of at least ``min_total_s`` each."""
    fn(arg)
    t0 = time.perf_counter()
    fn(arg)
    per = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_total_s / repeats / per))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(arg)
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def _scaling(
    report: Report, service: Server, baseline: Server, bodies: dict[int, bytes], mode: Mode
) -> dict[int, dict[str, float]]:
    report.say("one request at a time on a keep-alive connection; medians. json.loads/orjson.loads run in this process")
    report.say(
        f"  {'resources':>9} {'body':>9} {'json.loads':>11} {'orjson':>9} {'baseline':>10} {'service':>10}"
        f" {'service/json.loads':>19} {'service-baseline':>17}"
    )
    out = {}
    for n, body in bodies.items():
        js = _time_call(json.loads, body)
        oj = _time_call(orjson.loads, body)
        b = loadgen.sequential(
            HOST, baseline.port, SERVICE_PATH, body, count=mode.scaling_count, max_s=mode.scaling_max_s
        )
        s = loadgen.sequential(
            HOST, service.port, SERVICE_PATH, body, count=mode.scaling_count, max_s=mode.scaling_max_s
        )
        if s.errors or b.errors:
            report.say(f"  {n}: NON-200 answers: service {s.errors}, baseline {b.errors}")
        report.say(
            f"  {n:>9,} {len(body) / 1e6:>7.2f}MB {js * 1000:>9.2f}ms {oj * 1000:>7.2f}ms {b.median * 1000:>8.2f}ms"
            f" {s.median * 1000:>8.2f}ms {s.median / js:>18.2f}x {(s.median - b.median) * 1000:>15.2f}ms"
            f"   (n={len(s.seconds)}, service p90 {s.pct(90) * 1000:.2f} ms)"
        )
        out[n] = {
            "bytes": len(body),
            "json_loads_ms": js * 1000,
            "orjson_ms": oj * 1000,
            "baseline_ms": b.median * 1000,
            "service_ms": s.median * 1000,
        }
    return out


def _fallback(report: Report, service: Server, workdir: Path, mode: Mode) -> dict[str, float]:
    port = _free_port()
    fake = start(
        "fake-fhir",
        [
            sys.executable,
            "-m",
            "bench.fake_fhir",
            "--port",
            str(port),
            "--latency-ms",
            str(FALLBACK_LATENCY_MS),
            "--resources",
            "100",
        ],
        workdir,
        1,
        port,
        {"PYTHONPATH": str(ROOT)},
    )
    out: dict[str, float] = {}
    try:
        base = f"{fake.url}/fhir"
        with httpx.Client(timeout=10) as client:
            rtts = []
            for _ in range(max(5, mode.fallback_count // 2)):
                t0 = time.perf_counter()
                client.get(f"{base}/Patient/{workloads.PATIENT_ID}").raise_for_status()
                rtts.append(time.perf_counter() - t0)
            rtt = statistics.median(rtts)
            report.say(
                f"local FHIR endpoint: {FALLBACK_LATENCY_MS:g} ms added per query; one query measured "
                f"{rtt * 1000:.1f} ms (median of {len(rtts)})"
            )
            full = workloads.prefetch(100)
            for label, absent in (("6 queries", FALLBACK_ABSENT_6), ("11 queries (no prefetch)", tuple(full))):
                pf = {k: v for k, v in full.items() if k not in absent}
                body = orjson.dumps(workloads.hook_request(pf, fhir_server=base))
                client.get(f"{fake.url}/_stats?reset")
                lat = loadgen.sequential(
                    HOST, service.port, SERVICE_PATH, body, count=mode.fallback_count, max_s=30, warmup=1
                )
                stats = client.get(f"{fake.url}/_stats").json()
                calls = lat.sent + 1
                report.say(
                    f"  {label:<24}: hook latency p50 {lat.median * 1000:6.1f} ms, "
                    f"max {max(lat.seconds) * 1000:6.1f} ms"
                    f" = {lat.median / rtt:.2f} round trips; {stats['queries'] / calls:.0f} queries per call, "
                    f"up to {stats['max_in_flight']} in flight" + (f"; {lat.errors} NON-200" if lat.errors else "")
                )
                out[label] = lat.median / rtt
                out[label + " ms"] = lat.median * 1000
    finally:
        stop(fake)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, every figure once (< 60 s): for CI")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per app for sections 2-4 (default 1)")
    parser.add_argument("--fraction", type=float, default=0.5, help="fraction of max load for the latency figures")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument(
        "--variant",
        default="",
        help="run the service with proposed changes applied (measurement "
        "only; comma-separated, see bench/variants.py): " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="folder holding the cds_service package to serve "
        "(default: this checkout); e.g. a copy from before a change, for a before/after run",
    )
    args = parser.parse_args(argv)
    args.code = args.code.resolve()
    variants = [v for v in args.variant.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}")
    mode = QUICK if args.quick else FULL
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    began = time.monotonic()
    report = Report()
    report.say(f"== naltrexone CDS service benchmark ({'quick' if args.quick else 'full'} run)")
    _environment(report, args.workers, variants, args.code)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:
        workdir = Path(tmp)
        bodies = {n: workloads.body(n, now=now) for n in SCALING_SIZES}
        typical = bodies[100]
        typical_file = workdir / "typical.json"
        typical_file.write_bytes(typical)
        with servers(workdir, args.workers, variants, args.code) as (service, baseline):
            report.say()
            report.say("== 1. typical order-sign: ~100 prefetched resources")
            _sanity(report, service, baseline, typical)
            s_rps, b_rps = _throughput(report, service, baseline, typical_file, mode, args.workers, "max throughput")
            report.data["throughput"] = {"service": s_rps, "baseline": b_rps}
            report.say(
                f"latency at {args.fraction:.0%} of each app's max throughput (open loop, constant rate, "
                f"{mode.latency_s:g} s after {mode.latency_warmup_s:g} s warm-up)"
            )
            lb = _latency(report, baseline, typical, b_rps, mode, args.fraction)
            ls = _latency(report, service, typical, s_rps, mode, args.fraction)
            report.data["latency_ms"] = {
                name: {"p50": lat.pct(50) * 1000, "p95": lat.pct(95) * 1000, "p99": lat.pct(99) * 1000}
                for name, lat in (("baseline", lb), ("service", ls))
            }
            report.say("peak RSS per worker")
            rss_typical = _rss(report, "after the typical load", service, baseline)

            report.say()
            report.say("== 2. scaling: the same request with 10 to 5,000 prefetched resources")
            scaling = _scaling(report, service, baseline, bodies, mode)
            report.data["scaling"] = scaling
            report.say("peak RSS per worker")
            rss_scaling = _rss(report, "after the 5,000-resource requests", service, baseline)

            report.say()
            report.say("== 3. fallback fetch: no prefetch, local FHIR endpoint with 50 ms per query")
            fallback = _fallback(report, service, workdir, mode)
            report.data["fallback"] = fallback

        if mode.two_workers:
            report.say()
            report.say("== 4. two workers per app (one per core of this machine; wrk shares the same cores)")
            with servers(workdir, 2, variants, args.code) as (service2, baseline2):
                s2, b2 = _throughput(report, service2, baseline2, typical_file, mode, 2, "max throughput, typical")
                report.data["throughput_2_workers"] = {"service": s2, "baseline": b2}
                _rss(report, "after the typical load", service2, baseline2)

    ratio = s_rps / b_rps
    p99 = ls.pct(99) * 1000
    big = scaling[max(SCALING_SIZES)]
    big_ratio = big["service_ms"] / big["json_loads_ms"]
    rt6 = fallback["6 queries"]
    rss_peak = max(rss_typical["service"], rss_scaling["service"])
    report.target(
        ratio >= 0.5,
        "typical order-sign throughput >= 50% of the baseline",
        f"{ratio:.1%} ({s_rps:,.0f} vs {b_rps:,.0f} req/s)",
    )
    report.target(
        p99 < 25,
        f"p99 < 25 ms at {args.fraction:.0%} of max load",
        f"p99 {p99:.2f} ms at {s_rps * args.fraction:,.0f} req/s",
    )
    report.target(
        big_ratio <= 3,
        "5,000-resource prefetch <= 3x json.loads of the body",
        f"{big_ratio:.2f}x ({big['service_ms']:.1f} ms vs {big['json_loads_ms']:.1f} ms)",
    )
    report.target(
        rt6 <= 2,
        "fallback with 6 queries <= 2 round trips",
        f"{rt6:.2f} round trips ({fallback['6 queries ms']:.1f} ms)",
    )
    report.target(
        rss_typical["service"] < 150,
        "RSS < 150 MB per worker, typical order-sign load",
        f"peak {rss_typical['service']:.0f} MB (baseline {rss_typical['baseline']:.0f} MB)",
    )
    report.target(
        rss_peak < 150,
        "RSS < 150 MB per worker, including 5,000-resource requests",
        f"peak {rss_peak:.0f} MB (baseline {max(rss_typical['baseline'], rss_scaling['baseline']):.0f} MB "
        f"for the same {scaling[max(SCALING_SIZES)]['bytes'] / 1e6:.1f} MB body)",
    )
    report.say()
    report.say("== targets (printed, not enforced)")
    for met, name, detail in report.targets:
        report.say(f"  [{'met' if met else 'NOT MET':^7}] {name}: {detail}")
    report.data["targets"] = [{"met": m, "target": n, "measured": d} for m, n, d in report.targets]
    report.say(f"\nbenchmark took {time.monotonic() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report.data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
