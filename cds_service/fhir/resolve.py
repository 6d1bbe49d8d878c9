"""Prefetch resolution and the fallback fetch: turn a hook request into raw FHIR resources per data category.

Prefetch values mean different things (CDS Hooks 2.0, "Prefetch"), and each is honoured exactly:

* key absent           -> the client did not fetch it: fetch it from ``fhirServer``;
* key ``null``         -> there is no data: do not refetch;
* key OperationOutcome -> the client's fetch failed: fetch it ourselves; if that fails, the category is unavailable;
* key Bundle           -> use it; follow ``next`` links up to ``max_pages`` (more pages: the category is incomplete).

Fallback queries run concurrently under ONE deadline (``timeout_s``) that covers everything: connecting, a server
that never answers, one that drips a byte at a time (no per-read timeout would ever fire), and every ``next`` page.
At the deadline the unfinished fetches are cancelled; what they had read by then is kept and the category is marked
incomplete, and a category with nothing read is marked unavailable. No failure of the FHIR server fails the hook
call: each one becomes an ``Unavailable`` naming the category and a PHI-free cause, which the data-unavailable card
shows while the other checks still run.

A fetch is only ever made to an allowlisted server (``cds_service.auth.ssrf``), and a ``next`` link only within the
request's own ``fhirServer``: the access token is sent to that server and nowhere else, and never logged. Redirects
are not followed. A page must be FHIR JSON (an HTML error page is refused by its content type), at most
``max_response_bytes`` long, nested at most ``max_json_depth`` deep and hold at most ``max_entries`` entries; a
category keeps at most ``max_entries`` resources across its pages (more: incomplete).

When a required key is absent and there is no ``fhirServer`` at all, the data can be had neither way: 412. When a
``fhirServer`` was given but every fetch failed, the answer is still 200 with a data-unavailable card (not 412):
EHRs show nothing for a 412, and a safety check that fails must say so to the clinician (docs/robustness.md).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import orjson

from cds_service.auth.ssrf import fhir_server_allowed
from cds_service.domain import Category, Unavailable
from cds_service.errors import BadRequest, PreconditionFailed
from cds_service.fhir.values import as_dict, as_list, as_str, json_shape_problem
from cds_service.hooks.models import HookRequest
from cds_service.hooks.services import PREFETCH, PrefetchKey

log = logging.getLogger("cds_service.fetch")

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_ENTRIES = 20_000
# After the deadline, cancelled fetches get this long to unwind before the call answers without them.
CANCEL_GRACE_S = 0.25
_ISSUE_CODE = re.compile(r"^[a-z][a-z-]{0,40}$")
_PAGE_FAILED = "a further page could not be read"


class FetchError(Exception):
    """A fallback fetch failed; the message is PHI-free and names the cause (status, timeout, bad JSON...)."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    timeout_s: float = 4.0
    max_pages: int = 10
    allowed_servers: tuple[str, ...] = ()
    max_entries: int = MAX_ENTRIES  # per category across its pages, and per page ([limits] max_bundle_entries)
    max_response_bytes: int = MAX_RESPONSE_BYTES  # per page
    max_json_depth: int = MAX_JSON_DEPTH  # per page ([limits] max_json_depth)


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
        token = "{{context." + name + "}}"
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


def _outcome_code(body: dict[str, Any]) -> str:
    """The first issue code of an OperationOutcome, if it is a plain code (never diagnostics: they may hold PHI)."""
    issue = as_dict(next(iter(as_list(body.get("issue"))), None))
    code = issue.get("code")
    return f" ({code})" if isinstance(code, str) and _ISSUE_CODE.match(code) else ""


def _status_problem(status: int) -> str:
    hint = {
        401: " (the access token was refused)",
        403: " (the access token does not allow this read)",
        404: " (not found)",
        429: " (too many requests)",
    }.get(status, "")
    if 300 <= status < 400:
        hint = " (a redirect; redirects are not followed)"
    return f"the FHIR server answered HTTP {status}{hint}"


@dataclass
class _Progress:
    """What one category's fetch has read so far; survives the task being cancelled at the deadline."""

    key: PrefetchKey
    how: str  # "fetched" or "prefetch"
    resources: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


class FhirFetcher:
    """Reads FHIR searches from the EHR's server over a shared async HTTP client pool."""

    def __init__(self, http: httpx.AsyncClient, settings: FetchSettings) -> None:
        self.http = http
        self.settings = settings

    async def get(self, url: str, token: str | None, allowed: Sequence[str]) -> dict[str, Any]:
        """One FHIR JSON resource from ``url``, or FetchError. No deadline here: the caller sets the one deadline."""
        if not fhir_server_allowed(url, allowed):
            raise FetchError("the FHIR server is not on this service's allowlist; no request was made")
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        limit = self.settings.max_response_bytes
        try:
            async with self.http.stream("GET", url, headers=headers, follow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise FetchError(_status_problem(resp.status_code))
                media = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if media and "json" not in media:
                    raise FetchError(f"the FHIR server answered with {media[:60]}, not FHIR JSON")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise FetchError(f"the FHIR server's response was over the {limit} byte limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(f"the FHIR server's response was over the {limit} byte limit")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise FetchError("the FHIR server did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
            raise FetchError(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        try:
            body = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            raise FetchError("the FHIR server's response was not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FetchError("the FHIR server's response was not a FHIR resource")
        if body["resourceType"] == "OperationOutcome":
            raise FetchError("the FHIR server answered with an OperationOutcome" + _outcome_code(body))
        problem = json_shape_problem(body, max_depth=self.settings.max_json_depth, max_items=self.settings.max_entries)
        if problem:
            raise FetchError(f"the FHIR server's response was refused: {problem}")
        return body

    async def follow(
        self,
        first: dict[str, Any],
        token: str | None,
        allowed: Sequence[str],
        pages_read: int,
        *,
        base: str,
        first_url: str | None = None,
        into: list[dict[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Collect a Bundle's entries across ``next`` pages; returns (resources, problem or None).

        Resources are appended to ``into`` (a fresh list by default) page by page, so that a caller whose task is
        cancelled at the deadline still has every page read so far. A problem (page limit, entry limit, a loop, a
        link off ``base``, a page that cannot be read) stops the walk and means the category is incomplete.
        """
        resources = into if into is not None else []
        limit = self.settings.max_entries
        seen: set[str] = {first_url} if first_url else set()
        bundle, here = first, first_url or f"{base}/"
        resources.extend(_bundle_resources(first))
        while len(resources) <= limit and (nxt := _next_link(bundle)) is not None:
            try:
                nxt = urljoin(here, nxt)  # FHIR says absolute; some servers send relative links
            except ValueError:  # e.g. "http://[" (urlsplit refuses a broken IPv6 literal)
                return resources, "a next link is not a valid URL; it was not followed"
            if nxt in seen:
                return resources, "the FHIR server's pages link back to each other"
            if not fhir_server_allowed(nxt, [base]):
                return resources, "a next link points outside fhirServer; it was not followed"
            if pages_read >= self.settings.max_pages:
                return resources, f"more than {self.settings.max_pages} pages of results"
            seen.add(nxt)
            try:
                bundle = await self.get(nxt, token, allowed)
            except FetchError as exc:
                return resources, f"{_PAGE_FAILED}: {exc}"
            if bundle.get("resourceType") != "Bundle":
                return resources, "a results page was not a Bundle"
            here = nxt
            resources.extend(_bundle_resources(bundle))
            pages_read += 1
        if len(resources) > limit:
            del resources[limit:]
            return resources, f"more than {limit} entries"
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
            raise BadRequest(
                f"prefetch.{pk.key} must be a FHIR resource, a Bundle or null", expression=[f"prefetch.{pk.key}"]
            )
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

    if base is None or fetcher is None:
        for pk in to_fetch:  # only failed (OperationOutcome) keys get here without a server: absent ones were 412
            data.unavailable.append(Unavailable(pk.category, "the EHR's prefetch failed and no fhirServer was given"))
        for pk, bundle in to_follow:
            data.add(pk.category, _bundle_resources(bundle), "prefetch")
            data.unavailable.append(
                Unavailable(pk.category, "incomplete: more pages exist and no fhirServer was given", partial=True)
            )
        return data

    server: str = base
    the_fetcher: FhirFetcher = fetcher
    urls = {pk.key: f"{server}/{_render(pk.template, request.context)}" for pk in to_fetch}  # 400 before any I/O

    def finish(progress: _Progress, problem: str | None, *, failed: bool = False) -> None:
        progress.done = True
        data.add(progress.key.category, progress.resources, progress.how)
        if failed:
            data.fetch_errors += 1
        if problem is None:
            return
        if progress.resources or progress.how == "prefetch":
            data.unavailable.append(Unavailable(progress.key.category, f"incomplete: {problem}", partial=True))
        else:
            data.unavailable.append(Unavailable(progress.key.category, problem))

    async def fetch_one(progress: _Progress) -> None:
        pk = progress.key
        try:
            first = await the_fetcher.get(urls[pk.key], token, allowed_servers)
        except FetchError as exc:
            log.info("fallback fetch for %s failed: %s", pk.key, exc)
            finish(progress, str(exc), failed=True)
            return
        if first.get("resourceType") != "Bundle":
            progress.resources.append(first)
            finish(progress, None)
            return
        _, problem = await the_fetcher.follow(
            first, token, allowed_servers, 1, base=server, first_url=urls[pk.key], into=progress.resources
        )
        if problem:
            log.info("fallback fetch for %s incomplete: %s", pk.key, problem)
        finish(progress, problem, failed=_failed(problem))

    async def follow_one(progress: _Progress, bundle: dict[str, Any]) -> None:
        _, problem = await the_fetcher.follow(bundle, token, allowed_servers, 1, base=server, into=progress.resources)
        finish(progress, problem, failed=_failed(problem))

    fetches = [_Progress(pk, "fetched") for pk in to_fetch]
    follows = [(_Progress(pk, "prefetch"), bundle) for pk, bundle in to_follow]
    work = [fetch_one(p) for p in fetches] + [follow_one(p, b) for p, b in follows]
    if not work:
        return data
    timeout = the_fetcher.settings.timeout_s
    tasks = [asyncio.ensure_future(w) for w in work]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
        task.add_done_callback(_retrieve)
    if pending:
        # Let the cancelled fetches close their connections, but never wait on a server that ignores it.
        await asyncio.wait(pending, timeout=CANCEL_GRACE_S)
    for progress in [*fetches, *(p for p, _ in follows)]:
        if not progress.done:
            finish(progress, f"the FHIR server did not answer within {timeout:g} s", failed=True)
    for task in done:
        if (exc := task.exception()) is not None:  # a bug, not a data problem: let the app's handler see it
            raise exc
    return data


def _failed(problem: str | None) -> bool:
    """Did a walk over pages stop because a page could not be read (a fetch error), not at a limit?"""
    return problem is not None and problem.startswith(_PAGE_FAILED)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a cancelled task's outcome as seen, so a late exception is not reported as never retrieved."""
    if not task.cancelled():
        task.exception()
