"""The ``cds-service`` command: ``serve`` runs the service; other subcommands are added by their modules."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Sequence

from cds_service.config import ConfigError, load_settings

Handler = Callable[[argparse.Namespace], int]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cds_service.app import create_app, tune_gc_for_serving

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    host = args.host or ("127.0.0.1" if not settings.auth.required else "0.0.0.0")  # noqa: S104 - auth is on
    if not settings.auth.required and not _is_loopback(host):
        print(
            f"cds-service: refusing to listen on {host} with auth off; use a config file with [auth] required = true",
            file=sys.stderr,
        )
        return 2
    if settings.dev_mode:
        print(
            f"cds-service: no config file: local development mode (auth OFF, bound to {host}, "
            "fallback fetch to loopback FHIR servers only)",
            file=sys.stderr,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = create_app(settings) if args.workers <= 1 else None
    except ConfigError as exc:  # e.g. an unsupported [feedback] database_url, found when the store is opened
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    if app is None:
        # Worker processes build their own app from the same config (uvicorn imports the factory by name).
        if args.config:
            os.environ["CDS_CONFIG"] = str(args.config)
        uvicorn.run(
            "cds_service.app:app_from_env", factory=True, host=host, port=args.port, workers=args.workers,
            log_level="info", access_log=False,
        )  # fmt: skip
    else:
        tune_gc_for_serving()
        uvicorn.run(app, host=host, port=args.port, log_level="info", access_log=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-service", description="CDS Hooks service for naltrexone orders.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the CDS Hooks service")
    p.add_argument("--host", help="address to bind (default 127.0.0.1 without auth, 0.0.0.0 with auth)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--config", help="TOML config file (default: $CDS_CONFIG, else development mode)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1; about one per core)")
    p.set_defaults(handler=serve)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Subcommands living in their own modules (sandbox, check, report); absent modules are skipped."""
    out = []
    for name in ("cds_service.sandbox.cli", "cds_service.checkcli", "cds_service.store.cli"):
        try:
            module = __import__(name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        out.append(module.register)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
