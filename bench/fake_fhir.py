"""A local FHIR endpoint for the fallback-fetch workload: answers the service's prefetch queries after 50 ms.

Run by ``bench/run.py`` in its own process::

    python -m bench.fake_fhir --port 8091 --latency-ms 50 --resources 100

Each of the service's prefetch queries (``cds_service.hooks.services.PREFETCH``, rendered for the benchmark
patient) gets the same Bundle the prefetch workload would have sent; any other path is a 404 OperationOutcome.
``GET /_stats`` returns how many queries were answered and the most that were in flight at once, so the benchmark
can show that the service's fetches overlapped.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import unquote

import orjson

from bench.workloads import fallback_routes

Scope = dict[str, Any]


def make_app(latency_s: float, resources: int) -> Any:
    routes = fallback_routes(resources)
    stats = {"queries": 0, "in_flight": 0, "max_in_flight": 0}
    not_found = orjson.dumps(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
    )

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        query = scope["query_string"].decode("latin-1")
        if path == "/healthz":
            body, status = b'{"status":"ok"}', 200
        elif path == "/_stats":
            body, status = orjson.dumps(stats), 200
            if query == "reset":
                stats.update(queries=0, max_in_flight=0)
        else:
            stats["queries"] += 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            try:
                await asyncio.sleep(latency_s)
            finally:
                stats["in_flight"] -= 1
            key = unquote(path.split("/fhir/", 1)[-1] + (f"?{query}" if query else ""))
            found = routes.get(key)
            body, status = (found, 200) if found is not None else (not_found, 404)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/fhir+json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Local FHIR endpoint with added latency for the benchmark.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--resources", type=int, default=100)
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.latency_ms / 1000, args.resources),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
