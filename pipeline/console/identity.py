"""Who the analyst is: a trusted reverse proxy's headers, or (demo) a signed login cookie.

**Proxy mode** (``PIPELINE_CONSOLE_IDENTITY_HEADER`` set, default
``X-Forwarded-User``): the proxy authenticates the analyst and sets the
identity header, and the roles header (``X-Forwarded-Groups``: names
separated by commas, semicolons or spaces). The console trusts them, so it
must be reachable only through that proxy (bind to loopback or a private
interface, and make the proxy overwrite both headers on every request).

**Login mode** (identity header set to empty, only with
``PIPELINE_DEV_MODE``): a local form asks for a name and whether to act as
the reveal role, and a cookie signed with the console secret carries them.
It is for demos: there is no password.

Cookies and CSRF tokens are HMAC-SHA256 over the console secret
(``PIPELINE_CONSOLE_SECRET``), so every replica behind the proxy accepts
the others'.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from pipeline.console.workflow import WorkflowError, clean_name

SESSION_COOKIE: Final = "aw_session"
CSRF_COOKIE: Final = "aw_csrf"
SESSION_MAX_AGE: Final = 12 * 3600  # one shift and a half
_ROLE_SPLIT = re.compile(r"[,;\s]+")
_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class IdentityError(Exception):
    """No usable identity on the request (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Analyst:
    name: str
    roles: frozenset[str]
    via: Literal["proxy", "login"]

    def has_role(self, role: str) -> bool:
        return role in self.roles


def parse_roles(value: str | None) -> frozenset[str]:
    """Role names from a roles header; malformed names are ignored.

    >>> sorted(parse_roles("analyst, investigator;soc  tier2"))
    ['analyst', 'investigator', 'soc', 'tier2']
    """
    if not value:
        return frozenset()
    return frozenset(r for r in _ROLE_SPLIT.split(value.strip()) if _ROLE.match(r))


def analyst_from_headers(
    headers: Mapping[str, str], identity_header: str, roles_header: str
) -> Analyst:
    raw = headers.get(identity_header)
    if raw is None or not str(raw).strip():
        raise IdentityError(
            f"no analyst identity: the reverse proxy must set the {identity_header} header"
        )
    try:
        name = clean_name(str(raw), "analyst identity")
    except WorkflowError as exc:
        raise IdentityError(str(exc)) from None
    return Analyst(name, parse_roles(headers.get(roles_header)), "proxy")


class Signer:
    """HMAC-SHA256 tokens bound to a purpose; payloads are JSON, tokens URL-safe."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the console secret must be at least 16 characters")
        self._key = hashlib.sha256(b"access-watch-console\x00" + secret.encode()).digest()

    def _mac(self, purpose: str, body: bytes) -> str:
        mac = hmac.new(self._key, purpose.encode() + b"\x00" + body, hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    def sign(self, purpose: str, payload: object) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        return f"{body}.{self._mac(purpose, body.encode())}"

    def unsign(self, purpose: str, token: str) -> object:
        body, _, mac = token.partition(".")
        if not body or not mac or not hmac.compare_digest(mac, self._mac(purpose, body.encode())):
            raise IdentityError("invalid signature")
        try:
            return orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            raise IdentityError("invalid token") from None

    def csrf_token(self, seed: str, analyst_name: str) -> str:
        """The form token for this browser (its CSRF cookie) and this analyst."""
        return self._mac("csrf", f"{seed}\x00{analyst_name}".encode())

    def check_csrf(self, seed: str | None, analyst_name: str, token: str | None) -> bool:
        if not seed or not token:
            return False
        return hmac.compare_digest(self.csrf_token(seed, analyst_name), token)


def new_seed() -> str:
    return secrets.token_urlsafe(24)


def session_token(signer: Signer, analyst: Analyst, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    return signer.sign("session", {"n": analyst.name, "r": sorted(analyst.roles), "t": issued})


def analyst_from_session(signer: Signer, token: str | None, now: float | None = None) -> Analyst:
    if not token:
        raise IdentityError("not signed in")
    data = signer.unsign("session", token)
    if not isinstance(data, dict):
        raise IdentityError("invalid session")
    name, roles, issued = data.get("n"), data.get("r"), data.get("t")
    if not isinstance(name, str) or not isinstance(roles, list) or not isinstance(issued, int):
        raise IdentityError("invalid session")
    age = (now if now is not None else time.time()) - issued
    if not 0 <= age <= SESSION_MAX_AGE:
        raise IdentityError("session expired: sign in again")
    return Analyst(name, frozenset(r for r in roles if isinstance(r, str)), "login")
