"""Prefetch resolution and the fallback fetch: turn a hook request into raw FHIR resources per data category.

Prefetch values mean different things (CDS Hooks 2.0, "Prefetch"), and each is honoured exactly:

* key absent           -> the client did not fetch it: fetch it from ``fhirServer``;
* key ``null``         -> there is no data: do not refetch;
* key OperationOutcome -> the client's fetch failed: fetch it ourselves; if that fails, the category is unavailable;
* key Bundle           -> use it; follow ``next`` links up to ``max_pages`` (more pages: the category is incomplete).

Fallback queries run concurrently under one deadline. A fetch is only ever made to an allowlisted server
(``cds_service.auth.ssrf``); the access token is sent to that server and nowhere else, and never logged.
When a required key is absent and there is no ``fhirServer`` at all, the data can be had neither way: 412.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from cds_service.auth.ssrf import fhir_server_allowed
from cds_service.domain import Category, Unavailable
from cds_service.errors import BadRequest, PreconditionFailed
from cds_service.fhir.values import as_dict, as_list, as_str
from cds_service.hooks.models import HookRequest
from cds_service.hooks.services import PREFETCH, PrefetchKey

log = logging.getLogger("cds_service.fetch")

MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class FetchError(Exception):
    """A fallback fetch failed; the message is PHI-free and names the cause (status, timeout, bad JSON...)."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    timeout_s: float = 4.0
    max_pages: int = 10
    allowed_servers: tuple[str, ...] = ()


@dataclass
class ResolvedData:
    resources: dict[Category, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: list[Unavailable] = field(default_factory=list)
    provenance: dict[Category, str] = field(default_factory=dict)
    fetch_errors: int = 0

    def add(self, category: Category, resources: list[dict[str, Any]], how: str) -> None:
        self.resources.setdefault(category, []).extend(resources)
        previous = self.provenance.get(category)
        self.provenance[category] = how if previous in (None, how) else "mixed"


def _render(template: str, context: dict[str, Any]) -> str:
    out = template
    for name in ("patientId", "userId", "encounterId"):
        token = "{{context.%s}}" % name
        if token in out:
            value = as_str(context.get(name))
            if value is None:
                raise BadRequest(f"context.{name} is required by the prefetch template {template!r}")
            out = out.replace(token, quote(value, safe=""))
    return out


def _bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in as_list(bundle.get("entry")):
        res = as_dict(entry).get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") != "OperationOutcome":
            out.append(res)
    return out


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in as_list(bundle.get("link")):
        if isinstance(link, dict) and link.get("relation") == "next":
            return as_str(link.get("url"))
    return None


class FhirFetcher:
    """Reads FHIR searches from the EHR's server over a shared async HTTP client pool."""

    def __init__(self, http: httpx.AsyncClient, settings: FetchSettings) -> None:
        self.http = http
        self.settings = settings

    async def get(self, url: str, token: str | None, allowed: Sequence[str]) -> dict[str, Any]:
        if not fhir_server_allowed(url, allowed):
            raise FetchError("the FHIR server is not on this service's allowlist; no request was made")
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.http.stream("GET", url, headers=headers, follow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise FetchError(f"the FHIR server answered HTTP {resp.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise FetchError("the FHIR server's response was too large")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise FetchError("the FHIR server did not answer in time") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise FetchError("the FHIR server's response was not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FetchError("the FHIR server's response was not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise FetchError("the FHIR server answered with an OperationOutcome")
        return body

    async def follow(
        self, first: dict[str, Any], token: str | None, allowed: Sequence[str], pages_read: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Collect a Bundle's entries across ``next`` pages; returns (resources, problem or None)."""
        resources = _bundle_resources(first)
        seen: set[str] = set()
        bundle = first
        while (nxt := _next_link(bundle)) is not None:
            if nxt in seen:
                return resources, "the FHIR server's pages link back to each other"
            if pages_read >= self.settings.max_pages:
                return resources, f"more than {self.settings.max_pages} pages of results"
            seen.add(nxt)
            bundle = await self.get(nxt, token, allowed)
            if bundle.get("resourceType") != "Bundle":
                return resources, "a results page was not a Bundle"
            resources.extend(_bundle_resources(bundle))
            pages_read += 1
        return resources, None


async def resolve(
    request: HookRequest,
    fetcher: FhirFetcher | None,
    allowed_servers: Sequence[str],
    keys: Sequence[PrefetchKey] = PREFETCH,
) -> ResolvedData:
    """Gather every prefetch category from the request, fetching what is absent or failed."""
    data = ResolvedData()
    prefetch = request.prefetch or {}
    base = request.fhirServer.rstrip("/") if request.fhirServer else None
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None

    to_fetch: list[PrefetchKey] = []
    to_follow: list[tuple[PrefetchKey, dict[str, Any]]] = []
    for pk in keys:
        if pk.key not in prefetch:
            to_fetch.append(pk)
            continue
        value = prefetch[pk.key]
        if value is None:
            data.add(pk.category, [], "none")
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise BadRequest(f"prefetch.{pk.key} must be a FHIR resource, a Bundle or null", expression=[f"prefetch.{pk.key}"])
        rtype = value["resourceType"]
        if rtype == "OperationOutcome":
            to_fetch.append(pk)
        elif rtype == "Bundle":
            if _next_link(value) is not None:
                to_follow.append((pk, value))
            else:
                data.add(pk.category, _bundle_resources(value), "prefetch")
        else:
            data.add(pk.category, [value], "prefetch")

    missing_required = [pk.key for pk in to_fetch if pk.required and pk.key not in prefetch]
    if missing_required and base is None:
        raise PreconditionFailed(
            "prefetch is missing " + ", ".join(missing_required) + " and no fhirServer was given to read them from"
        )

    completed: set[str] = set()

    async def fetch_one(pk: PrefetchKey) -> None:
        await _fetch_one(pk)
        completed.add(pk.key)  # not in ``finally``: a task cancelled at the deadline must not count as done

    async def _fetch_one(pk: PrefetchKey) -> None:
        if base is None or fetcher is None:
            data.unavailable.append(Unavailable(pk.category, "the EHR's prefetch failed and no fhirServer was given"))
            return
        try:
            url = f"{base}/{_render(pk.template, request.context)}"
            first = await fetcher.get(url, token, allowed_servers)
            if first.get("resourceType") == "Bundle":
                resources, problem = await fetcher.follow(first, token, allowed_servers, pages_read=1)
                data.add(pk.category, resources, "fetched")
                if problem:
                    data.unavailable.append(Unavailable(pk.category, f"incomplete: {problem}", partial=True))
            else:
                data.add(pk.category, [first], "fetched")
        except FetchError as exc:
            data.fetch_errors += 1
            log.info("fallback fetch for %s failed: %s", pk.key, exc)
            data.unavailable.append(Unavailable(pk.category, str(exc)))

    async def follow_one(pk: PrefetchKey, bundle: dict[str, Any]) -> None:
        await _follow_one(pk, bundle)
        completed.add(pk.key)

    async def _follow_one(pk: PrefetchKey, bundle: dict[str, Any]) -> None:
        if fetcher is None or base is None:
            data.add(pk.category, _bundle_resources(bundle), "prefetch")
            data.unavailable.append(Unavailable(pk.category, "incomplete: more pages exist and no fhirServer was given", partial=True))
            return
        try:
            resources, problem = await fetcher.follow(bundle, token, allowed_servers, pages_read=1)
        except FetchError as exc:
            data.fetch_errors += 1
            resources, problem = _bundle_resources(bundle), f"a further page could not be read: {exc}"
        data.add(pk.category, resources, "prefetch")
        if problem:
            data.unavailable.append(Unavailable(pk.category, f"incomplete: {problem}", partial=True))

    tasks = [fetch_one(pk) for pk in to_fetch] + [follow_one(pk, b) for pk, b in to_follow]
    if tasks:
        timeout = fetcher.settings.timeout_s if fetcher else 1.0
        pending = [asyncio.ensure_future(t) for t in tasks]
        done, not_done = await asyncio.wait(pending, timeout=timeout)
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.gather(*not_done, return_exceptions=True)
            for pk in [*to_fetch, *(pk for pk, _ in to_follow)]:
                if pk.key not in completed:
                    data.fetch_errors += 1
                    data.unavailable.append(
                        Unavailable(pk.category, f"the FHIR server did not answer within {timeout:g} s")
                    )
        for task in done:
            if (exc := task.exception()) is not None:  # a bug, not a data problem: let the app's handler see it
                raise exc
    return data
