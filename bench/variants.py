"""Experiments behind the optimisations proposed for modules the benchmark does not own.

Each variant patches a freshly built app (never a file) the way the proposed change would behave, so that
``bench.run --variant`` and ``bench.profile_stages --instructions --variant`` can measure the gain before anyone
edits the real module. They are measurement tools, not configuration: nothing in the service imports this.
"""

from __future__ import annotations

import gc
import os
from typing import Any

VARIANTS = {
    "gc-freeze": "gc.freeze() once the app is built: start-up objects (models, tables) leave the collector's view",
    "gc-tune": "gc.freeze() once the app is built, and gc.set_threshold(50_000, 20, 100): a request's own garbage is "
    "freed by reference counting; it should not also trigger collections of the whole heap",
    "no-shape-check": "app._read_json without values.json_shape_problem (r4b.validate guards depth per resource)",
    "no-store": "without the StoreObserver (audit trail)",
    "no-observers": "without any observer (audit trail, metrics)",
}


# Process-wide settings, not service code: a run that applies them to the service applies them to the baseline too.
PROCESS_WIDE = frozenset({"gc-freeze", "gc-tune"})


def apply(app: Any, names: list[str]) -> None:
    for name in names:
        if name == "gc-freeze":
            gc.collect()
            gc.freeze()
        elif name == "gc-tune":
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        elif name == "no-shape-check":
            from cds_service.fhir import values

            values.json_shape_problem = lambda *_, **__: None
        elif name == "no-store":
            app.state.observers = [o for o in app.state.observers if type(o).__name__ != "StoreObserver"]
        elif name == "no-observers":
            app.state.observers = []
        else:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def app_from_env() -> Any:
    """uvicorn factory: the service as ``cds_service.app:app_from_env`` builds it, then ``$BENCH_VARIANTS`` applied."""
    from cds_service.app import app_from_env as build

    app = build()
    apply(app, [v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v])
    return app


def baseline_from_env() -> Any:
    """uvicorn factory: the decode-only baseline with the process-wide variants of ``$BENCH_VARIANTS`` applied."""
    from bench.baseline_app import app

    apply(app, [v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v in PROCESS_WIDE])
    return app
