"""``cds-service report`` (the override report) and ``cds-service db`` (feedback database migrations).

Registered by :mod:`cds_service.cli` through :func:`register`. Both read ``[feedback] database_url`` from the
config file (``--config``, else ``$CDS_CONFIG``, else the development default), or ``--database-url``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.config import ConfigError, load_settings
from cds_service.store.db import (
    alembic_config,
    create_store_engine,
    current_revision,
    database_url,
    head_revision,
    safe_url,
    upgrade,
)
from cds_service.store.report import RENDERERS, build_report, render_svg


def _since(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO date-time (UTC when it has no zone)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $CDS_CONFIG, else development defaults)")
    parser.add_argument("--database-url", help="use this database instead of [feedback] database_url")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="per-rule override report from the feedback database",
        description="Per rule: cards fired, cards with feedback, accepted, overridden, override rate, top override "
        "reasons and median latency, so a site can see which rule is noise.",
    )
    p.add_argument("--since", type=_since, metavar="DATE", help="only hook calls on or after DATE (UTC)")
    p.add_argument("--format", choices=sorted(RENDERERS), default="table", help="output format (default: table)")
    p.add_argument("--plot", metavar="FILE.svg", type=Path, help="also write an SVG of the weekly override rates")
    _add_database_options(p)
    p.set_defaults(handler=run_report)

    db = sub.add_parser("db", help="feedback database migrations (the service also upgrades at start-up)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("upgrade", "migrate the database to the latest schema"), ("current", "show its revision")):
        q = db_sub.add_parser(name, help=text)
        _add_database_options(q)
        q.set_defaults(handler=run_db)
    rev = db_sub.add_parser("revision", help="create a migration file (developers)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff the schema module against the database")
    _add_database_options(rev)
    rev.set_defaults(handler=run_db)


def _fail(message: str, code: int = 1) -> int:
    print(f"cds-service: {message}", file=sys.stderr)
    return code


def _engine(args: argparse.Namespace, *, must_exist: bool) -> Engine | int:
    try:
        raw = args.database_url or load_settings(args.config).feedback.database_url
        url = database_url(raw)
        if must_exist and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            path = Path(url.database or "")
            if not path.exists():
                return _fail(f"no feedback database at {path.resolve()} yet (the service creates it when it starts)")
        return create_store_engine(raw)
    except ConfigError as exc:  # StoreConfigError included
        return _fail(str(exc), 2)


def run_report(args: argparse.Namespace) -> int:
    if args.plot is not None and args.plot.suffix.lower() != ".svg":
        return _fail("--plot writes an SVG image: name the file *.svg", 2)
    engine = _engine(args, must_exist=True)
    if isinstance(engine, int):
        return engine
    try:
        upgrade(engine)  # an older database gets the current schema; a current one is only read
        report, weekly = build_report(engine, args.since, datetime.now(UTC))
    except (SQLAlchemyError, OSError, CommandError) as exc:
        return _fail(f"cannot read the feedback database {safe_url(engine.url)}: {type(exc).__name__}")
    finally:
        engine.dispose()
    sys.stdout.write(RENDERERS[args.format](report))
    if args.plot is not None:
        try:
            args.plot.write_text(render_svg(weekly), encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write {args.plot}: {exc.strerror}")
        print(f"cds-service: wrote {args.plot}", file=sys.stderr)
    return 0


def run_db(args: argparse.Namespace) -> int:
    engine = _engine(args, must_exist=args.db_command == "current")
    if isinstance(engine, int):
        return engine
    try:
        if args.db_command == "upgrade":
            upgrade(engine)
            print(f"{safe_url(engine.url)}: at revision {head_revision()}")
        elif args.db_command == "current":
            with engine.connect() as conn:
                print(f"{safe_url(engine.url)}: at revision {current_revision(conn)} (latest: {head_revision()})")
        else:
            cfg = alembic_config(engine)
            scripts = ScriptDirectory.from_config(cfg)
            rev_id = f"{len(list(scripts.walk_revisions())) + 1:04d}"
            command.revision(cfg, message=args.message, autogenerate=args.autogenerate, rev_id=rev_id)
    except (SQLAlchemyError, OSError, CommandError) as exc:
        return _fail(f"{safe_url(engine.url)}: {type(exc).__name__}: {exc}")
    finally:
        engine.dispose()
    return 0
