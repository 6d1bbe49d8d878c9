"""Where the service may send a patient's access token: the SSRF guard for the fallback FHIR fetch.

A CDS request names its own ``fhirServer`` and hands us a bearer token for it. Fetching whatever URL a request
names would let anyone who can reach the service make it send requests into our network (server-side request
forgery) or hand the EHR's access token to a host of the caller's choosing. So the fallback fetch only goes to
servers an operator listed, and the comparison is made on parsed components (scheme, host, port, whole path
segments), never with ``str.startswith`` on raw URLs, which would admit ``https://ehr.example/fhirevil`` and
``https://ehr.example.evil.com``.

Anything unusual in a URL (user info, dot segments, percent-encoded separators in the path, backslashes,
whitespace) is refused rather than normalised: FHIR URLs never need them, and normalising is where parsers
disagree with one another. The query string of a request URL is ignored (it does not change where the request
goes); a prefix has none.

Ports: a prefix that names a port matches that port only; one that omits it matches the scheme's default port,
except on a loopback host, where it matches any port (local test servers listen on whatever port was free, and
``http://127.0.0.1`` is how development configs say "a FHIR server on this machine").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = ["fhir_server_allowed", "is_loopback_host", "validate_server_prefix"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Whitespace, control characters and backslashes: browsers and servers disagree on what they mean in a URL.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# Encoded dot, slash and backslash let a path look like one thing to us and another to the server.
_ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


class _BaseUrl(NamedTuple):
    """The parts of a URL that decide where a request really goes."""

    scheme: str
    host: str
    port: int | None  # None when the URL does not name one
    path: str  # "" for the root; never ends with "/"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.scheme]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1, IPv4-mapped 127.x).

    Only the literal name ``localhost`` counts: other names could resolve anywhere.
    """
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _parse_url(url: str, *, is_prefix: bool) -> _BaseUrl | str:
    """Return the parsed URL, or a sentence saying why it is not an acceptable one."""
    if not isinstance(url, str) or not url:
        return "is empty"
    if _UNSAFE_CHARS.search(url):
        return "contains whitespace, control characters or a backslash"
    if is_prefix and ("?" in url or "#" in url):
        return "has a query or fragment; a server base URL has neither"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL (bad host or port)"
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return "must start with https:// (or http:// for a test server)"
    if "@" in parts.netloc:
        return "contains user information (user:password@); put credentials elsewhere"
    host = parts.hostname or ""
    if not host or "%" in host:
        return "has no usable host name"
    if _ENCODED_SEPARATORS.search(parts.path):
        return "contains a percent-encoded '.', '/' or '\\' in its path"
    segments = parts.path.split("/")[1:]
    if any(segment in {".", ".."} for segment in segments):
        return "contains '.' or '..' path segments"
    path = parts.path.rstrip("/")
    if "//" in path:
        return "contains an empty path segment ('//')"
    return _BaseUrl(scheme, host, port, path)


def _render(base: _BaseUrl) -> str:
    host = f"[{base.host}]" if ":" in base.host else base.host
    port = "" if base.port is None or base.port == _DEFAULT_PORTS[base.scheme] else f":{base.port}"
    return f"{base.scheme}://{host}{port}{base.path}"


def validate_server_prefix(prefix: str) -> str:
    """Check an operator-supplied FHIR server prefix and return it in canonical form.

    Used at start-up (``[fhir] allowed_servers`` and ``[[auth.issuers]] fhir_servers``) so that a typo is a
    clear error instead of a silently unusable entry. The canonical form has a lower-case scheme and host, no
    default port and no trailing slash. An ``http://`` prefix is accepted: writing it is the operator's
    explicit choice (meant for loopback test servers); an ``https://`` prefix never admits an ``http://`` URL.

    Raises:
        ValueError: with a message naming the prefix and what is wrong with it.
    """
    parsed = _parse_url(prefix, is_prefix=True)
    if isinstance(parsed, str):
        raise ValueError(f"FHIR server prefix {prefix!r} {parsed}")
    return _render(parsed)


def _path_within(path: str, prefix_path: str) -> bool:
    """Match whole path segments: ``/fhir`` covers ``/fhir`` and ``/fhir/R4``, not ``/fhirevil``."""
    return not prefix_path or path == prefix_path or path.startswith(prefix_path + "/")


def _port_matches(target: _BaseUrl, allowed: _BaseUrl) -> bool:
    if allowed.port is None and is_loopback_host(allowed.host):
        return True
    return target.effective_port == allowed.effective_port


def fhir_server_allowed(url: str, allowed_prefixes: Sequence[str]) -> bool:
    """May a request (carrying the EHR's access token) go to ``url``: a ``fhirServer`` or a URL below it?

    True only if ``url`` is a clean URL whose scheme and host equal those of one of ``allowed_prefixes``,
    whose port matches (see the module docstring) and whose path lies within that prefix's path on a segment
    boundary; the query string plays no part. ``https`` is required unless the matching prefix itself says
    ``http://`` (an explicit operator choice, normally for a loopback test server): the scheme is part of the
    match, so an https prefix never allows a downgrade. Prefixes that do not parse are ignored here;
    :func:`validate_server_prefix` rejects them at start-up.
    """
    target = _parse_url(url, is_prefix=False)
    if isinstance(target, str):
        return False
    for prefix in allowed_prefixes:
        allowed = _parse_url(prefix, is_prefix=True)
        if isinstance(allowed, str):
            continue
        if (
            target.scheme == allowed.scheme
            and target.host == allowed.host
            and _port_matches(target, allowed)
            and _path_within(target.path, allowed.path)
        ):
            return True
    return False
