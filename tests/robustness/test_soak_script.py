"""The soak script works: a 3-second run against the real service process, zero unexpected results.

The soak test itself is not part of the default test run; CI runs it for longer (see docs/robustness.md). This
only proves the script starts the service and the fake FHIR server, drives every request kind, measures and
reports, and stops everything it started. About 8 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"
KINDS = {
    "sign-clean", "sign-opioid", "sign-labs", "sign-long-history", "select-no-medication", "prescribe", "fallback",
    "fallback-broken", "missing-prefetch-no-server", "malformed-json", "wrong-hook", "over-body-limit", "feedback",
    "discovery",
}  # fmt: skip


def test_a_short_soak_run_passes_and_reports() -> None:
    run = subprocess.run(  # noqa: S603 - our interpreter and our script, fixed arguments
        [sys.executable, str(SCRIPT), "--seconds", "3", "--warmup-seconds", "1", "--workers", "4", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["unexpected"] == 0 and report["failures"] == []
    assert report["requests"] > 50
    assert set(report["kinds"]) == KINDS  # every kind of request was sent at least once
    assert set(report["statuses"]) <= {"200", "400", "412", "413"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    rss = report["rss_mb"]
    if rss["end"] is not None:  # Linux: /proc/<pid>/status
        assert rss["start"] > 0 and rss["growth"] <= rss["bound"]
    assert report["service_alive_at_end"] is True
