"""``cds-service sandbox``: the service, a FHIR server with synthetic patients and an EHR-like page, in one command.

No configuration: auth is off, so it listens on loopback only (like ``serve`` without a config file).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import threading
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.sandbox.patients import PatientFileError


def _is_loopback(host: str) -> bool:
    from cds_service.cli import _is_loopback as loopback

    return loopback(host)


def url_for(host: str, port: int, path: str = "/sandbox") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _can_open_browser() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _open_when_ready(host: str, port: int, url: str) -> None:
    def wait_and_open() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    webbrowser.open(url)
                    return
            except OSError:
                time.sleep(0.2)

    threading.Thread(target=wait_and_open, name="open-browser", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cds_service.sandbox.app import create_sandbox_app, load_store

    if not _is_loopback(args.host):
        print(
            f"cds-service sandbox: refusing to listen on {args.host}: the sandbox has auth off; use a loopback address",
            file=sys.stderr,
        )
        return 2
    for path in args.patients or ():
        if not path.exists():
            print(f"cds-service sandbox: {path} does not exist", file=sys.stderr)
            return 2
    today = datetime.now(UTC).date()
    try:
        store, warnings = load_store(
            today, args.patients or (), fixtures=not args.no_fixtures, roll="none" if args.keep_dates else "anchor"
        )
    except PatientFileError as exc:
        print(f"cds-service sandbox: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"cds-service sandbox: skipped {warning}", file=sys.stderr)
    if not store.patients:
        print("cds-service sandbox: no patients to show (no fixtures and no Bundles with a Patient)", file=sys.stderr)
        return 2
    if not _port_free(args.host, args.port):
        print(f"cds-service sandbox: port {args.port} is in use; try --port {args.port + 1}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("cds_service.auth").setLevel(logging.ERROR)  # "auth is off" is already in the line below
    app = create_sandbox_app(store)
    url = url_for(args.host, args.port)
    print(
        f"Sandbox ready: open {url}  ({len(store.patients)} synthetic patients, auth off, Ctrl-C to stop)", flush=True
    )
    if not args.no_open and _can_open_browser():
        _open_when_ready(args.host, args.port, url)
    config: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": False}
    uvicorn.run(app, **config)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sandbox",
        help="run the service with synthetic patients and an EHR-like order page (no config needed)",
        description=(
            "Start the CDS service (auth off, loopback only) with a FHIR server holding synthetic patients and a "
            "page at /sandbox that behaves like an EHR's order screen."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--patients",
        action="append",
        type=Path,
        metavar="DIR_OR_FILE",
        help="also serve the FHIR R4 patient Bundles in this folder or file (repeatable), e.g. Synthea output",
    )
    p.add_argument("--no-fixtures", action="store_true", help="do not load the project's own fixture patients")
    p.add_argument(
        "--keep-dates",
        action="store_true",
        help="keep dates as written (default: move them so each patient's data is recent)",
    )
    p.add_argument("--no-open", action="store_true", help="do not open a web browser")
    p.set_defaults(handler=run)
