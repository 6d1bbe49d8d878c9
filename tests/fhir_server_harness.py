"""Start the loopback FHIR R4 test server (tests/fhir_server, Medplum's FHIR router in memory) from Python.

Independent of pytest::

    ok, reason = available()              # (False, "...") when node or node_modules is missing
    with FhirTestServer() as fhir:        # node server.mjs --port 0; waits for "LISTENING <port>"
        fhir.base_url                     # "http://127.0.0.1:<port>/fhir/R4"
        fhir.load_bundle(bundle)          # POST a transaction/batch Bundle; returns the response Bundle
        fhir.search_all("Observation", {"patient": pid, "_sort": "-date"})   # follows `next` links
        fhir.reset()                      # drop all data

Install the server once with ``npm ci --prefix tests/fhir_server``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
INSTALL_COMMAND = "npm ci --prefix tests/fhir_server"
MIN_NODE_MAJOR = 20
FHIR_JSON = "application/fhir+json"

JsonDict = dict[str, Any]


class FhirTestServerError(RuntimeError):
    """The server did not start, or it refused a request the harness made."""


def node_executable() -> str | None:
    """``$FHIR_TEST_SERVER_NODE`` if set, else ``node`` on PATH."""
    return os.environ.get("FHIR_TEST_SERVER_NODE") or shutil.which("node")


def available() -> tuple[bool, str]:
    """Whether the server can be started here; the reason (for ``pytest.skip``) when it cannot."""
    node = node_executable()
    if node is None:
        return False, "node is not on PATH: the loopback FHIR test server needs Node.js >= 20"
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return False, f"{SERVER_DIR / 'node_modules'} is missing: run `{INSTALL_COMMAND}`"
    try:
        version = subprocess.run(  # noqa: S603 - fixed argv, node from PATH or $FHIR_TEST_SERVER_NODE
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return False, f"cannot run {node} --version: {exc}"
    if major < MIN_NODE_MAJOR:
        return False, f"node {version} is too old for the FHIR test server (needs >= {MIN_NODE_MAJOR})"
    return True, ""


def as_transaction(bundle: JsonDict) -> JsonDict:
    """A ``transaction``/``batch`` Bundle as is; a ``collection`` (some Synthea exports) as a transaction."""
    if bundle.get("type") in ("transaction", "batch"):
        return bundle
    if bundle.get("type") != "collection":
        raise ValueError(f"cannot load a Bundle of type {bundle.get('type')!r}")
    entries = [
        {**e, "request": {"method": "POST", "url": e["resource"]["resourceType"]}} for e in bundle.get("entry", [])
    ]
    return {**bundle, "type": "transaction", "entry": entries}


class FhirTestServer:
    """The Node FHIR server as a subprocess on a free loopback port. Use as a context manager."""

    def __init__(self, *, startup_timeout: float = 60.0, request_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.port: int | None = None
        self.startup_seconds: float | None = None  # spawn -> LISTENING, for the curious
        self._proc: subprocess.Popen[str] | None = None
        self._client: httpx.Client | None = None
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FhirTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> FhirTestServer:
        if self._proc is not None:
            raise FhirTestServerError("already started")
        ok, reason = available()
        if not ok:
            raise FhirTestServerError(reason)
        node = node_executable()
        assert node is not None
        started = time.monotonic()
        # stdin stays open and unused: --exit-on-stdin-close makes node exit if this process dies first.
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, node from PATH or $FHIR_TEST_SERVER_NODE
            [node, str(SERVER_SCRIPT), "--port", "0", "--exit-on-stdin-close"],
            cwd=SERVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self._proc.stderr,), daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            self.port = self._wait_for_listening(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        # trust_env=False: never send loopback traffic to an HTTP(S)_PROXY from the environment.
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"accept": FHIR_JSON},
            timeout=self.request_timeout,
            trust_env=False,
        )
        return self

    # Both pipes are drained for the server's whole life so it can never block on a full pipe.
    def _pump_stdout(self, stream: Any) -> None:
        for line in stream:
            self._stdout.put(line.rstrip("\n"))
        self._stdout.put(None)

    def _pump_stderr(self, stream: Any) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    def _wait_for_listening(self, started: float) -> int:
        deadline = started + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FhirTestServerError(
                    f"no LISTENING line within {self.startup_timeout:.0f} s\n{self._stderr_tail()}"
                )
            try:
                line = self._stdout.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    time.sleep(0.1)  # let the stderr pump catch up
                    raise FhirTestServerError(
                        f"server exited with {self._proc.returncode} before listening\n{self._stderr_tail()}"
                    ) from None
                continue
            if line is None:
                continue  # stdout closed; poll() above reports the exit
            if line.startswith("LISTENING "):
                return int(line.split()[1])

    def _stderr_tail(self) -> str:
        return "server stderr:\n" + "\n".join(self._stderr) if self._stderr else "(server wrote no stderr)"

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    # ------------------------------------------------------------------ HTTP helpers
    @property
    def root_url(self) -> str:
        if self.port is None:
            raise FhirTestServerError("not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """FHIR base, no trailing slash: ``http://127.0.0.1:<port>/fhir/R4``."""
        return f"{self.root_url}/fhir/R4"

    @property
    def client(self) -> httpx.Client:
        """An httpx.Client whose base_url is the FHIR base (relative paths like ``"Patient/1"`` work)."""
        if self._client is None:
            raise FhirTestServerError("not started")
        return self._client

    def _json(self, response: httpx.Response) -> JsonDict:
        if response.status_code >= 400:
            raise FhirTestServerError(
                f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:2000]}"
            )
        body: JsonDict = response.json()
        return body

    def healthy(self) -> bool:
        try:
            return self.client.get(f"{self.root_url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def reset(self) -> None:
        """Delete every resource (POST $reset)."""
        self._json(self.client.post("$reset"))

    def load_bundle(self, bundle: JsonDict, *, check: bool = True) -> JsonDict:
        """POST a transaction or batch Bundle (a ``collection`` is sent as a transaction) to the base URL.

        ``urn:uuid:`` fullUrls get server-assigned ids and references to them are rewritten. A transaction is
        all-or-nothing and a failure raises FhirTestServerError. For a batch, ``check`` raises if any entry
        failed (the others stay stored). Returns the transaction-response / batch-response Bundle.
        """
        payload = json.dumps(as_transaction(bundle)).encode()
        response = self.client.post("", content=payload, headers={"content-type": FHIR_JSON})
        result = self._json(response)
        if check:
            failed = [e for e in result.get("entry", []) if int(e["response"]["status"].split()[0]) >= 400]
            if failed:
                raise FhirTestServerError(f"{len(failed)} batch entries failed: {json.dumps(failed)[:2000]}")
        return result

    def load_file(self, path: str | os.PathLike[str], *, check: bool = True) -> JsonDict:
        with open(path, encoding="utf-8") as f:
            return self.load_bundle(json.load(f), check=check)

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> JsonDict:
        """GET a path relative to the base (``"Patient/1"``, ``"Observation"``) or an absolute URL."""
        return self._json(self.client.get(path_or_url, params=params))

    def search_pages(self, resource_type: str, params: dict[str, Any] | None = None) -> list[JsonDict]:
        """Every searchset page: the first from the query, then by following ``next`` links."""
        pages = [self.get(resource_type, params)]
        while (url := next_link(pages[-1])) is not None:
            if len(pages) > 10_000:
                raise FhirTestServerError("more than 10000 pages: a next-link loop?")
            pages.append(self.get(url))
        return pages

    def search_all(self, resource_type: str, params: dict[str, Any] | None = None) -> list[JsonDict]:
        """The resources of every page of a search, in order."""
        return [e["resource"] for page in self.search_pages(resource_type, params) for e in page.get("entry", [])]


def next_link(bundle: JsonDict) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            url: str = link["url"]
            return url
    return None
