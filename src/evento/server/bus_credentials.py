"""Who may join the bus: the shared ``--auth-token`` and per-bundle tokens (``--bus-tokens FILE``).

A token file is a JSON object mapping each token to the bundle ids its holder may register as::

    {"3f9c…": ["todolist-command"], "a71e…": ["todolist-query", "todolist-saga"]}

>>> credentials = BusCredentials(bundle_tokens={"t-web": ["todolist-web"]})
>>> credentials.refusal("t-web", "todolist-web") is None
True
>>> credentials.refusal("t-web", "todolist-command")
"this token may not register as bundle 'todolist-command'"
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

__all__ = ["BusCredentials", "load_bus_tokens"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BusCredentials:
    """The tokens a ``Hello`` may present, and as which bundle ids.

    ``shared_token`` (``--auth-token``) lets its holder register as any bundle id; a token of ``bundle_tokens``
    (``--bus-tokens``) only as the bundle ids listed for it. With neither, the bus is open: any peer that reaches it
    may register as any bundle.

    Tokens are kept and looked up as SHA-256 digests, and the shared one is compared with ``hmac.compare_digest``:
    what a lookup's time depends on is a digest, which an attacker cannot steer byte by byte towards a valid one,
    so timing tells nothing about how much of a guess matched.
    """

    def __init__(self, shared_token: str = "", bundle_tokens: Mapping[str, Iterable[str]] | None = None) -> None:
        self._shared = _digest(shared_token) if shared_token else None
        self._bundles: dict[bytes, frozenset[str]] = {}
        for token, bundle_ids in (bundle_tokens or {}).items():
            if not token:
                raise ValueError("a bus token must not be empty")
            self._bundles[_digest(token)] = frozenset(bundle_ids)

    @property
    def open(self) -> bool:
        """No token is required: every peer may register as any bundle."""
        return self._shared is None and not self._bundles

    def refusal(self, token: str, bundle_id: str) -> str | None:
        """Why a peer presenting ``token`` may not register as ``bundle_id``, or ``None`` when it may."""
        if self.open:
            return None
        if not token:
            return "missing auth token"
        digest = _digest(token)
        if self._shared is not None and hmac.compare_digest(digest, self._shared):
            return None
        allowed = self._bundles.get(digest)
        if allowed is None:
            return "wrong auth token"
        if bundle_id not in allowed:
            return f"this token may not register as bundle {bundle_id!r}"
        return None


def load_bus_tokens(path: Path) -> dict[str, list[str]]:
    """The token file at ``path``; raises ValueError with a one-line reason when it is not a JSON object of
    non-empty tokens, each mapped to a non-empty list of bundle ids."""
    try:
        tokens = msgspec.json.decode(path.read_bytes(), type=dict[str, list[str]])
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"{path}: expected a JSON object of token -> list of bundle ids: {exc}") from None
    for number, (token, bundle_ids) in enumerate(tokens.items(), 1):
        # Entries are named by position: an error line must not show a token.
        if not token:
            raise ValueError(f"{path}: the token of entry {number} is empty")
        if not bundle_ids or not all(bundle_ids):
            raise ValueError(f"{path}: entry {number} needs a non-empty list of non-empty bundle ids")
    return tokens
