"""The physical limit: a FastAPI app that reads and decodes the hook request body, then answers ``{"cards": []}``.

Same framework, same server, same route shape and the same JSON library (orjson) as the service: whatever the
service costs above this app is the cost of the service's own work (request model, prefetch resolution, the
snapshot, the rules, the cards).
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(title="CDS Hooks baseline (decode only)")

_EMPTY = b'{"cards":[]}'


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request) -> Response:
    body = orjson.loads(await request.body())
    if not isinstance(body, dict):
        return Response(b'{"resourceType":"OperationOutcome"}', status_code=400, media_type="application/fhir+json")
    return Response(_EMPTY, media_type="application/json")
