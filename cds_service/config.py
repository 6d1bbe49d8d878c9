"""Typed service settings, read from a TOML file and validated at start-up.

The file is named by ``--config`` or the ``CDS_CONFIG`` environment variable. Without one the service runs in
local-development mode: auth off, bound to loopback, fetching only from loopback FHIR servers. Settings are
passed to ``create_app`` (never imported as a global) so tests can build an app per configuration.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from cds_service.auth.settings import AuthSettings
from cds_service.auth.ssrf import validate_server_prefix
from cds_service.policy import Policy

DEV_FHIR_SERVERS = ("http://127.0.0.1", "http://localhost", "http://[::1]")


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message is meant for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FhirSettings(_Section):
    # scheme + host (+ port) + path prefixes; the fallback fetch goes nowhere else (cds_service.auth.ssrf)
    allowed_servers: list[Annotated[str, AfterValidator(validate_server_prefix)]] = Field(default_factory=list)
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 4.0
    max_pages: Annotated[int, Field(ge=1, le=100)] = 10


class FeedbackSettings(_Section):
    database_url: str = "sqlite:///./cds-feedback.sqlite3"
    audit_retention_days: Annotated[int, Field(ge=1, le=3650)] = 365


class LimitSettings(_Section):
    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 5 * 1024 * 1024
    max_bundle_entries: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000
    max_json_depth: Annotated[int, Field(ge=16, le=1000)] = 64


class Settings(_Section):
    public_base_url: AnyHttpUrl | None = None
    auth: AuthSettings = Field(default_factory=AuthSettings)
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    policy: Policy = Field(default_factory=Policy)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    dev_mode: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _auth_needs_issuers(self) -> Settings:
        if self.auth.required and not self.auth.issuers:
            raise ValueError("[auth] required = true but no [[auth.issuers]] are configured: no EHR could call")
        if self.auth.required and self.public_base_url is None:
            raise ValueError("public_base_url is required when [auth] required = true (it is the JWT audience)")
        return self

    @property
    def base_url(self) -> str:
        return str(self.public_base_url).rstrip("/") if self.public_base_url else "http://127.0.0.1:8080"

    @property
    def fetch_allowlist(self) -> tuple[str, ...]:
        if self.dev_mode:
            return tuple(self.fhir.allowed_servers) + DEV_FHIR_SERVERS
        return tuple(self.fhir.allowed_servers)

    @classmethod
    def development(cls, **overrides: Any) -> Settings:
        """Local development: no auth, loopback FHIR servers allowed. Never for a non-loopback bind."""
        data: dict[str, Any] = {"auth": {"required": False}, "dev_mode": True}
        data.update(overrides)
        return cls.model_validate(data)


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None) -> Settings:
    """Settings from ``path``, else ``$CDS_CONFIG``, else development defaults."""
    chosen = path or os.environ.get("CDS_CONFIG")
    if not chosen:
        return Settings.development()
    file = Path(chosen)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    raw.setdefault("auth", {}).setdefault("required", True)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config file {file} is invalid:\n{_format(exc)}") from None
