"""Who is asking: API keys from `Authorization: Bearer <key>` or `X-API-Key: <key>`, checked per endpoint scope.

A route depends on `require("scan")` (or another scope from `guard.serve.keys.SCOPES`); a route in a group the
operator made public (`GUARD_SERVE_PUBLIC`) also serves requests without a key. A key that is given is always
checked, public route or not: a wrong key is answered 401, never ignored. Key records are cached per worker
for `CACHE_SECONDS`, so a revoked key stops working on every replica within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from guard.serve.keys import ApiKey, ApiKeys, split_key
from guard.serve.problems import Problem

CACHE_SECONDS = 30.0
_bearer = HTTPBearer(auto_error=False, description="An API key from `guard keys api create`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same API key, in its own header.")


@dataclass(frozen=True)
class Principal:
    """The caller: a key (its id and scopes), or nobody on a public endpoint."""

    key_id: str | None
    scopes: frozenset[str] = frozenset()


ANONYMOUS = Principal(key_id=None)
MISS = object()
"""`Authenticator.cached`'s answer when the key's record is not cached (or is too old)."""


class Authenticator:
    """Checks keys against the store, with a short per-worker cache of key records (hits and misses)."""

    def __init__(self, keys: ApiKeys, public: frozenset[str]) -> None:
        self.keys = keys
        self.public = public
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> ApiKey | object | None:
        """The key `token` proves, or None, from the cache alone (no blocking call); `MISS` when the store must
        be asked (`refresh`). The common case, a known key, then costs no hop to a thread."""
        parsed = split_key(token)
        if parsed is None:
            return None
        with self._lock:
            cached = self._cache.get(parsed[0])
        if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
            return MISS
        return None if cached[1] is None else self.keys.authenticate(token, known=cached[1])

    def refresh(self, token: str) -> ApiKey | None:
        """After a `MISS`: the key's record read from the store (blocking) and cached, then checked."""
        key_id = split_key(token)[0]  # well-formed: `cached` answers None, not MISS, for a malformed token
        record = self.keys.get(key_id)
        with self._lock:
            if len(self._cache) > 10_000:  # many made-up key ids: forget them rather than grow
                self._cache.clear()
            self._cache[key_id] = (time.monotonic(), record)
        return None if record is None else self.keys.authenticate(token, known=record)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="guard"'})


def require(scope: str, public_group: str | None = None) -> Callable:
    """A dependency: the caller must hold `scope` (or `admin`), unless `public_group` is public and no key is sent."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_header)],
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        token = bearer.credentials if bearer is not None else header_key
        if not token:
            if public_group is not None and public_group in authenticator.public:
                request.state.principal = ANONYMOUS
                return ANONYMOUS
            raise _unauthorized("This endpoint needs an API key: send `Authorization: Bearer <key>`.")
        record = authenticator.cached(token)
        if record is MISS:
            record = await run_in_threadpool(authenticator.refresh, token)
        if record is None:
            raise _unauthorized("The API key is not valid (unknown, revoked or mistyped).")
        if not record.allows(scope):
            raise Problem(
                403,
                "forbidden",
                f"The API key {record.key_id} may not use this endpoint: it needs the `{scope}` scope.",
                key_id=record.key_id,
            )
        principal = Principal(key_id=record.key_id, scopes=record.scopes)
        request.state.principal = principal
        return principal

    return dependency
