"""Who may use the console, and who did what: loopback without a token, anywhere else only with one.

On loopback the console trusts the local user (the operator named on the command line) but
still refuses requests whose Host header is not a loopback name (a web page the person visits
cannot reach it by DNS rebinding). Bound to any other address it requires a token per operator:
given once as `?token=`, it becomes an HttpOnly cookie; scripts may send it as a bearer token.
Every form that changes something carries a per-console secret, so another site cannot submit
it through the person's browser.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

COOKIE = "aar_console"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Access:
    """The console's access rule for the address it is bound to."""

    host: str
    operators: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    """sha256 of a token -> the operator it belongs to (empty on loopback)."""
    form_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def needs_token(self) -> bool:
        return not is_loopback(self.host)

    def issue_tokens(self) -> dict[str, str]:
        """A fresh token per operator (printed once, kept only as hashes); none on loopback."""
        if not self.needs_token:
            return {}
        issued = {operator: secrets.token_urlsafe(24) for operator in self.operators}
        self.tokens = {_digest(token): operator for operator, token in issued.items()}
        return issued

    def operator(self, request: Request) -> str | None:
        """The operator making the request, or None if it must be refused."""
        if not self.needs_token:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0]
            return self.operators[0] if is_loopback(host) else None
        token = request.query_params.get("token") or request.cookies.get(COOKIE)
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        return self.tokens.get(_digest(token)) if token else None

    def form_ok(self, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(submitted, self.form_secret)
