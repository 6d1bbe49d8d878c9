"""Where a hook call's time goes, in-process and without HTTP: CPU time per stage, or instructions per call.

    .venv/bin/python -m bench.profile_stages                 # CPU time per stage, 100-resource typical request
    .venv/bin/python -m bench.profile_stages --size 5000     # the same for the 5,000-resource request
    .venv/bin/python -m bench.profile_stages --instructions  # instructions per call under valgrind (~2 minutes)
    .venv/bin/python -m bench.profile_stages --cprofile      # cProfile of whole calls, top functions

CPU time (``time.process_time``) is less disturbed by other processes than wall time, and instruction counts
(callgrind, counted only while the calls run) are not disturbed at all: use them to compare an optimisation
before and after. Stages follow ``cds_service.app``'s ``_answer``; "whole call" is the real
ASGI app (middleware, observers, response serialisation) called in-process, and "baseline call" the decode-only
app, so "whole call - baseline call" is what the service costs on top of reading the request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.variants import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
PATH = "/cds-services/naltrexone-order-sign"


def _asgi_caller(app: Any, body: bytes) -> Callable[[], Any]:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"host", b"127.0.0.1"),
    ]

    async def call() -> int:
        sent: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await app(scope, receive, send)
        status = int(sent[0]["status"])
        if status != 200:
            raise RuntimeError(f"the app answered {status}: {sent[1].get('body', b'')[:300]!r}")
        return status

    return call


def _median_cpu(fn: Callable[[], Any], rounds: int, per_round: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(per_round):
            fn()
        samples.append((time.process_time() - t0) / per_round)
    return statistics.median(samples)


@dataclass
class _Setup:
    body: bytes
    app: Any
    stages: list[tuple[str, Callable[[], Any]]]
    summary: str


def _setup(size: int, now: datetime) -> _Setup:
    """The service app and each stage of ``_answer`` as a function of the pre-computed previous stage."""
    import orjson

    from bench import workloads
    from cds_service.app import app_from_env
    from cds_service.fhir import snapshot as snapshot_module
    from cds_service.fhir.orders import read_draft_orders
    from cds_service.fhir.resolve import resolve
    from cds_service.fhir.snapshot import build_snapshot
    from cds_service.hooks.models import CardsResponse, HookRequest
    from cds_service.rules import evaluate

    body = workloads.body(size, now=now)
    app = app_from_env()
    settings = app.state.settings
    cards = app.state.cards
    loop = asyncio.new_event_loop()

    raw = orjson.loads(body)
    request = HookRequest.model_validate(raw)
    drafts = read_draft_orders(request.hook, request.context)
    data = loop.run_until_complete(resolve(request, None, ()))
    snap = build_snapshot(data, drafts.other_medications)
    order = drafts.to_check[0]
    findings = evaluate(snap, order, settings.policy, now)
    rendered = [cards.render(f, order, snap.patient.id) for f in findings]

    # Which resources does build_snapshot validate? Record them once, then time validating exactly those.
    original_validate = snapshot_module.__dict__["validate"]
    kept: list[tuple[Any, ...]] = []
    setattr(snapshot_module, "validate", lambda *args: kept.append(args))  # noqa: B010 - a monkeypatch, on purpose
    try:
        build_snapshot(data, drafts.other_medications)
    finally:
        setattr(snapshot_module, "validate", original_validate)  # noqa: B010
    resources = [r for rs in data.resources.values() for r in rs]

    def validate_all_relevant() -> None:
        for args in kept:
            original_validate(*args)

    stages: list[tuple[str, Callable[[], Any]]] = [("orjson.loads(body)", lambda: orjson.loads(body))]
    try:
        from cds_service.fhir.resolve import MAX_JSON_DEPTH
        from cds_service.fhir.values import json_shape_problem

        limits = settings.limits
        depth = getattr(limits, "max_json_depth", MAX_JSON_DEPTH)
        stages.append(
            (
                "json_shape_problem",
                lambda: json_shape_problem(raw, max_depth=depth, max_items=limits.max_bundle_entries),
            )
        )
    except ImportError:
        pass
    stages += [
        ("HookRequest.model_validate", lambda: HookRequest.model_validate(raw)),
        ("read_draft_orders", lambda: read_draft_orders(request.hook, request.context)),
        ("resolve (all prefetched)", lambda: loop.run_until_complete(resolve(request, None, ()))),
        ("build_snapshot", lambda: build_snapshot(data, drafts.other_medications)),
        (f"  of which r4b.validate x{len(kept)}", validate_all_relevant),
        ("rules.evaluate", lambda: evaluate(snap, order, settings.policy, now)),
        (f"cards.render x{len(findings)}", lambda: [cards.render(f, order, snap.patient.id) for f in findings]),
        ("CardsResponse.dump + orjson.dumps", lambda: orjson.dumps(CardsResponse(cards=rendered).dump())),
    ]
    summary = (
        f"{size} resources ({len(resources)} in resolved categories), {len(body):,} bytes; "
        f"{len(kept)} validated; {len(findings)} card(s)"
    )
    return _Setup(body, app, stages, summary)


def _stages(size: int, rounds: int) -> None:
    from bench import baseline_app

    now = datetime.now(UTC)
    setup = _setup(size, now)
    app, body, stages = setup.app, setup.body, setup.stages
    per = max(1, min(200, int(20_000 / size)))

    async def lifespan_calls() -> tuple[float, float]:
        call = _asgi_caller(app, body)
        base = _asgi_caller(baseline_app.app, body)
        async with app.router.lifespan_context(app):
            for _ in range(3):
                await call()
                await base()
            out = []
            for fn in (call, base):
                samples = []
                for _ in range(rounds):
                    t0 = time.process_time()
                    for _ in range(per):
                        await fn()
                    samples.append((time.process_time() - t0) / per)
                out.append(statistics.median(samples))
            return out[0], out[1]

    with tempfile.TemporaryDirectory() as tmp:  # the default feedback store writes ./cds-feedback.sqlite3
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            whole, baseline = asyncio.run(lifespan_calls())
        finally:
            os.chdir(cwd)
    print(f"{setup.summary}; CPU ms per call, median of {rounds} rounds x {per}")
    for name, fn in stages:
        fn()
        print(f"  {name:<38} {_median_cpu(fn, rounds, per) * 1000:9.3f} ms")
    print(f"  {'whole call (ASGI, in-process)':<38} {whole * 1000:9.3f} ms")
    print(f"  {'baseline call (ASGI, in-process)':<38} {baseline * 1000:9.3f} ms")
    print(f"  {'whole - baseline':<38} {(whole - baseline) * 1000:9.3f} ms")


def _controlled_calls(size: int, calls: int, variants: list[str], stages: bool) -> None:
    """Under callgrind: warm up, then per phase wait for "go", make ``calls`` calls, report "done"."""
    from bench import baseline_app
    from bench import variants as variants_module

    setup = _setup(size, datetime(2026, 11, 21, 12, tzinfo=UTC))
    service = setup.app

    async def run() -> None:
        async with service.router.lifespan_context(service):
            for name, app in (("service", service), ("baseline", baseline_app.app)):
                call = _asgi_caller(app, setup.body)
                for _ in range(3):
                    await call()
                if name == "service":
                    variants_module.apply(service, variants)
                await asyncio.sleep(0.2)  # let the audit writer flush the warm-up records
                print(f"ready {name}", flush=True)
                sys.stdin.readline()
                for _ in range(calls):
                    await call()
                await asyncio.sleep(0.2)  # the audit writer's work for these calls belongs to them
                print(f"done {name}", flush=True)
                sys.stdin.readline()

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        asyncio.run(run())
        for name, fn in setup.stages if stages else ():
            fn()
            print(f"ready {name}", flush=True)
            sys.stdin.readline()
            for _ in range(calls):
                fn()
            print(f"done {name}", flush=True)
            sys.stdin.readline()


def _instructions(size: int, calls: int, keep: Path | None, variants: list[str], stages: bool) -> None:
    """Instructions per call, service and baseline, counted by callgrind between "zero" and "dump" (all threads)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.profile_stages",
            "--size",
            str(size),
            "--calls",
            str(calls),
        ]
        if variants:
            cmd += ["--variant", ",".join(variants)]
        if stages:
            cmd += ["--stages"]
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            cmd,
            cwd=tmp,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
                "PYTHONHASHSEED": "0",
            },
        )
        assert proc.stdin is not None and proc.stdout is not None
        dumps = 0
        for line in proc.stdout:
            word, _, name = line.strip().partition(" ")
            if word == "ready":
                subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)  # noqa: S603,S607
            elif word == "done":
                subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)  # noqa: S603,S607
                dumps += 1
                results[name] = _total_ir(Path(f"{out}.{dumps}")) / calls
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(f"{out}.{dumps}", keep / f"callgrind.{dumps}.out")
            else:
                continue
            proc.stdin.write("go\n")
            proc.stdin.flush()
        proc.wait(timeout=600)
        if len(results) < 2:
            raise SystemExit(f"callgrind run failed:\n{proc.stderr.read()[-3000:] if proc.stderr else ''}")
    shown = f", service variant: {', '.join(variants)}" if variants else ""
    print(
        f"{size} resources: instructions per whole call (callgrind, {calls} calls after 3 warm-up calls, "
        f"all threads{shown})"
    )
    for which, ir in results.items():
        print(f"  {which:<38} {ir / 1e6:10.3f} M")
        if which == "baseline":
            print(f"  {'service - baseline':<38} {(results['service'] - results['baseline']) / 1e6:10.3f} M")
            print(f"  {'baseline / service':<38} {results['baseline'] / results['service']:10.1%}")


def _total_ir(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")


def _cprofile(size: int, top: int) -> None:
    import cProfile
    import pstats

    from bench import workloads
    from cds_service.app import app_from_env

    body = workloads.body(size)
    app = app_from_env()
    call = _asgi_caller(app, body)
    per = max(5, min(200, int(5_000 / size)))

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(3):
                await call()
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(per):
                await call()
            profile.disable()
        print(f"cProfile of {per} whole calls, {size} resources")
        pstats.Stats(profile).sort_stats("tottime").print_stats(top)

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            asyncio.run(run())
        finally:
            os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100, help="prefetched resources (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="timing rounds; the median is printed")
    parser.add_argument("--instructions", action="store_true", help="instructions per call under callgrind")
    parser.add_argument(
        "--variant",
        default="",
        help="with --instructions: proposals to measure, comma-separated ("
        + ", ".join(VARIANTS)
        + "; see bench/variants.py)",
    )
    parser.add_argument("--stages", action="store_true", help="with --instructions: also count each stage")
    parser.add_argument("--keep", type=Path, help="with --instructions: keep the callgrind dumps in this folder")
    parser.add_argument("--cprofile", action="store_true", help="cProfile whole calls, print the top functions")
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)  # internal: one callgrind run
    args = parser.parse_args()
    os.environ.setdefault("CDS_CONFIG", str(ROOT / "bench" / "service.toml"))
    variants = [v for v in args.variant.split(",") if v]
    if args.calls is not None:
        _controlled_calls(args.size, args.calls, variants, args.stages)
    elif args.instructions:
        _instructions(args.size, 20 if args.size <= 100 else 3, args.keep, variants, args.stages)
    elif args.cprofile:
        _cprofile(args.size, 40)
    else:
        _stages(args.size, args.rounds)


if __name__ == "__main__":
    main()
