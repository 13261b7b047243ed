"""Bearer tokens for the REST API, each bound to a tenant, stored only as SHA-256 hashes.

    rendezvous token --tenant acme        # prints a new token once, and the line to store

Tokens come from ``RDV_TOKENS`` (``tenant:sha256,tenant:sha256``) and/or ``RDV_TOKENS_FILE``
(one ``tenant sha256`` per line, ``#`` comments). With none configured the API is open (a
development default; the log says so). With tokens, every REST call needs
``Authorization: Bearer <token>``: the token's tenant is the request's tenant (a body naming
another tenant is refused), a pipeline whose spec lists ``tenants:`` refuses every other
tenant, and a caller only ever receives the Result of its own request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

__all__ = ["Tokens", "hash_token", "new_token"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "rdv_" + secrets.token_urlsafe(32)


class Tokens:
    def __init__(self, hashes: dict[str, str]) -> None:
        self.hashes = hashes  # sha256 hex -> tenant

    @classmethod
    def from_settings(cls, settings) -> "Tokens | None":
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (x.strip() for x in settings.tokens.split(","))):
            tenant, _, digest = item.partition(":")
            pairs.append((tenant.strip(), digest.strip()))
        if settings.tokens_file:
            for number, line in enumerate(Path(settings.tokens_file).read_text().splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    fields = line.split()
                    if len(fields) != 2:
                        raise ValueError(f"{settings.tokens_file}:{number}: expected 'tenant sha256', got {line!r}")
                    pairs.append((fields[0], fields[1]))
        for tenant, digest in pairs:
            if not tenant or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"token entry for tenant {tenant!r}: expected a SHA-256 hex digest "
                                 f"(`rendezvous token --tenant {tenant or 'NAME'}` prints one)")
        return cls({digest.lower(): tenant for tenant, digest in pairs}) if pairs else None

    def tenant_of(self, authorization: str | None) -> str | None:
        """The tenant of a ``Bearer`` header, or None (missing, malformed or unknown token)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        digest = hash_token(authorization[7:].strip())
        found = None
        for known, tenant in self.hashes.items():  # compare every entry in constant time
            if hmac.compare_digest(known, digest):
                found = tenant
        return found
