"""Robustness suite: fuzzing, limits, FHIR fault injection, a real FHIR server, the soak script, audit rows.

What every test here holds the service to (issue "zero 5xx, nothing silent"): every call is answered 200 with
well-formed cards or a 4xx carrying an OperationOutcome, within a bounded time, and a safety check that could not
run says so in a data-unavailable card. The shared pieces live in this module:

* ``robust_settings`` -- development settings with a fresh feedback store in a temporary directory;
* ``check_response`` / ``empty_fields`` -- the response contract, checked recursively;
* ``FaultServer`` -- a real HTTP server on 127.0.0.1 that misbehaves in one chosen way for one resource type.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import shutil
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from cds_service.config import Settings

SIGN = "/cds-services/naltrexone-order-sign"
SELECT = "/cds-services/naltrexone-order-select"
PRESCRIBE = "/cds-services/naltrexone-medication-prescribe"
INDICATORS = frozenset({"info", "warning", "critical"})


_STORE_DIR = Path(tempfile.mkdtemp(prefix="cds-robustness-"))
atexit.register(shutil.rmtree, _STORE_DIR, ignore_errors=True)
_STORE_IDS = itertools.count()


def robust_settings(**overrides: Any) -> Settings:
    """Development settings (auth off, loopback FHIR servers allowed) with a fresh feedback store in a temp dir.

    A file, not ``sqlite://``: an in-memory store does not survive a second lifespan of the same app (the engine's
    one connection is closed at the first shutdown; schemathesis' ASGI loader runs a lifespan of its own), and the
    feedback route then answers 503 -- a store matter, not what these tests are about.
    """
    data: dict[str, Any] = {"feedback": {"database_url": f"sqlite:///{_STORE_DIR}/store-{next(_STORE_IDS)}.sqlite3"}}
    data.update(overrides)
    return Settings.development(**data)


# ------------------------------------------------------------------------------------------- response contract


def empty_fields(value: Any, path: str = "$") -> list[str]:
    """Paths of every ``null``, ``""``, ``[]`` or ``{}`` inside ``value`` (CDS Hooks: omit empty optional fields)."""
    found: list[str] = []
    if value is None or value in ("", [], {}):
        return [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += empty_fields(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += empty_fields(v, f"{path}[{i}]")
    return found


def check_outcome(status: int, body: Any) -> None:
    """A 4xx must carry a FHIR OperationOutcome with at least one error issue that says something."""
    assert isinstance(body, dict) and body.get("resourceType") == "OperationOutcome", (status, body)
    issues = body.get("issue")
    assert isinstance(issues, list) and issues, body
    assert issues[0].get("severity") == "error" and issues[0].get("code"), body
    assert isinstance(issues[0].get("diagnostics"), str) and issues[0]["diagnostics"].strip(), body


def check_cards(body: Any) -> list[dict[str, Any]]:
    """A 200 hook answer: ``{"cards": [...]}``, each card well-formed, nothing empty anywhere."""
    assert isinstance(body, dict) and isinstance(body.get("cards"), list), body
    cards: list[dict[str, Any]] = body["cards"]
    for i, card in enumerate(cards):
        assert empty_fields(card, f"cards[{i}]") == [], empty_fields(card, f"cards[{i}]")
        assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140, card["summary"]
        assert card["indicator"] in INDICATORS, card
        assert card["source"]["label"], card
        assert isinstance(card["uuid"], str), card
        if card.get("suggestions"):
            assert card.get("selectionBehavior") in ("at-most-one", "any"), card
        for reason in card.get("overrideReasons", []):
            assert reason.get("display") and reason.get("code"), reason
    return cards


def check_response(response: Any) -> Any:
    """Never 5xx; a 4xx carries an OperationOutcome; a 200 hook answer holds valid cards. Returns the JSON."""
    status = response.status_code
    assert status < 500, (status, response.text[:2000])
    body = orjson.loads(response.content) if response.content else None
    if status >= 400:
        check_outcome(status, body)
    elif isinstance(body, dict) and "cards" in body:
        check_cards(body)
    else:
        assert body is not None and empty_fields(body) == [], (status, body)
    return body


def rule_ids(body: dict[str, Any]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in body["cards"]]


def unavailable_card(body: dict[str, Any]) -> dict[str, Any]:
    cards = [c for c in body["cards"] if c["source"]["topic"]["code"] == "data-unavailable"]
    assert len(cards) == 1, rule_ids(body)
    return cards[0]


# --------------------------------------------------------------------------------------------- fault injection


def closed_port() -> int:
    """A loopback port with nothing listening on it (connection refused), as far as the OS can promise."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


FAULTS = (
    "hang",  # accepts the connection, reads the request, never answers
    "401", "403", "404", "500",  # an OperationOutcome with that status
    "html",  # 200 with an HTML error page
    "invalid-json",  # 200, application/fhir+json, truncated JSON
    "outcome",  # 200 with an OperationOutcome
    "loop",  # a Bundle whose next link leads to a page whose next link leads back
    "drip",  # 200 and a valid Bundle, one byte every 200 ms
    "huge",  # 200 and a 36 MB Bundle (over the 32 MiB page limit), no Content-Length (read until close)
    "redirect",  # 302 to another URL on the same server
    "offhost",  # a Bundle whose next link points at another host
    "slow",  # a normal answer after 300 ms (a control: slow is not broken)
    "pages",  # a normal search paged 2 entries at a time (?page=n), ``pages`` pages
)  # fmt: skip


class FaultServer:
    """A FHIR server on 127.0.0.1 that misbehaves in one way for one resource type; a context manager.

    ``base(mode, target)`` is a ``fhirServer`` URL: searches for ``target`` (a resource type, or ``"all"``) get the
    fault, every other search an empty searchset and ``Patient/<id>`` a Patient. ``requests`` lists the paths
    (with query) seen, in order. ``entries`` are the resources a normal search for ``target`` answers with.
    """

    def __init__(self, *, entries: list[dict[str, Any]] | None = None, pages: int = 3) -> None:
        self.entries = entries or []
        self.pages = pages
        self.requests: list[str] = []
        self.release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, mode: str, target: str = "Condition") -> str:
        return f"{self.root}/{mode}/{target}/fhir"

    def __enter__(self) -> FaultServer:
        server = self

        class Handler(_FaultHandler):
            owner = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops bursts of connects: a 1 s SYN retry each


def _bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


class _FaultHandler(BaseHTTPRequestHandler):
    owner: FaultServer
    protocol_version = "HTTP/1.0"  # one request per connection: a hung one never blocks the next
    disable_nagle_algorithm = True  # the drip mode's single bytes go out at once

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the service gave up on us (deadline)
            super().handle()

    def _send(self, status: int, body: bytes, content_type: str = "application/fhir+json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, orjson.dumps(value))

    def do_GET(self) -> None:
        owner = self.owner
        owner.requests.append(self.path)
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) < 4 or parts[2] != "fhir":
            self._json({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}, 404)
            return
        mode, target, rtype = parts[0], parts[1], parts[3]
        if rtype == "Patient" and len(parts) > 4 and target not in ("Patient", "all"):
            self._json({"resourceType": "Patient", "id": parts[4], "gender": "female", "birthDate": "1990-01-01"})
            return
        if target not in (rtype, "all"):
            self._json(_bundle([]))
            return
        self._fault(mode, f"{owner.root}{url.path}", url.query)

    def _fault(self, mode: str, here: str, query: str) -> None:
        owner = self.owner
        outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
        if mode == "hang":
            owner.release.wait(60)
        elif mode in ("401", "403", "404", "500"):
            self._json(outcome, int(mode))
        elif mode == "html":
            self._send(200, b"<html><body><h1>Service temporarily unavailable</h1></body></html>", "text/html")
        elif mode == "invalid-json":
            self._send(200, b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Cond')
        elif mode == "outcome":
            self._json(outcome)
        elif mode == "loop":
            other = "b" if "page=a" in query else "a"
            self._json(_bundle(owner.entries[:1], f"{here}?patient=x&page={other}"))
        elif mode == "drip":
            body = orjson.dumps(_bundle(owner.entries))
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                if owner.release.wait(0.2):
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
        elif mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()  # no Content-Length: the size is only known by reading
            self.wfile.write(b'{"resourceType": "Bundle", "type": "searchset", "entry": [')
            chunk = b'{"resource": {"resourceType": "Basic", "id": "' + b"x" * 1_000_000 + b'"}},'
            for _ in range(36):
                self.wfile.write(chunk)
            self.wfile.write(b'{"resource": {"resourceType": "Basic"}}]}')
        elif mode == "redirect":
            self._send(302, b"", Location=f"{owner.root}/slow/all/fhir/Condition")
        elif mode == "offhost":
            self._json(_bundle(owner.entries[:1], here.replace("127.0.0.1", "localhost") + "?page=2"))
        elif mode == "slow":
            time.sleep(0.3)
            self._json(_bundle(owner.entries))
        elif mode == "pages":
            page = int(query.split("page=")[1].split("&")[0]) if "page=" in query else 0
            chunk_ = owner.entries[page * 2 : page * 2 + 2]
            more = page + 1 < owner.pages
            self._json(_bundle(chunk_, f"{here}?patient=x&page={page + 1}" if more else None))
        else:
            self._json(outcome, 400)
