"""A small client of the server's REST API for the ``evento`` commands: it logs in once (``POST /api/auth/login``)
and sends the token; every failure becomes a :class:`CommandError` of one line (the server unreachable, wrong
credentials, the API's own problem ``detail``)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["ApiClient", "CommandError", "Credentials", "path_segment"]


class CommandError(Exception):
    """A command failed for a reason its user can act on; the message is the one line to print."""


@dataclass(frozen=True)
class Credentials:
    """Where the API is and who calls it: ``--url``, ``--user`` and ``--password`` (or ``EVENTO_URL``,
    ``EVENTO_USER``, ``EVENTO_PASSWORD``)."""

    url: str
    user: str
    password: str

    @classmethod
    def resolve(cls, url: str | None, user: str | None, password: str | None) -> Credentials:
        """The options given, else the environment's, else the defaults (a local server, ``admin``); a password
        neither given nor in the environment is asked for on a terminal."""
        url = url or os.environ.get("EVENTO_URL") or "http://127.0.0.1:3000"
        user = user or os.environ.get("EVENTO_USER") or "admin"
        password = password if password is not None else os.environ.get("EVENTO_PASSWORD")
        if password is None:
            if not sys.stdin.isatty():
                raise CommandError("no password: give --password or set EVENTO_PASSWORD")
            import getpass

            password = getpass.getpass(f"Password of {user} at {url}: ")
        return cls(url.rstrip("/"), user, password)


def path_segment(value: str) -> str:
    """``value`` as one segment of a URL path (a consumer id may hold any character)."""
    return quote(value, safe="")


class ApiClient:
    """Calls the API at ``credentials.url`` as ``credentials.user``."""

    def __init__(self, credentials: Credentials, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self._client = httpx.Client(base_url=credentials.url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _login(self) -> str:
        body = {"username": self.credentials.user, "password": self.credentials.password}
        response = self._send("POST", "/api/auth/login", json=body, authenticated=False)
        token: str = response.json()["token"]
        return token

    def request(self, method: str, path: str, **options: Any) -> Any:
        """The JSON the API answers (``None`` for an empty answer); raises :class:`CommandError`."""
        response = self._send(method, path, **options)
        return response.json() if response.content else None

    def pages(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paged list, page after page."""
        items: list[Any] = []
        page = 0
        while True:
            body = self.request("GET", path, params={**params, "page": page, "size": 500})
            items.extend(body["items"])
            if len(items) >= body["total"] or not body["items"]:
                return items
            page += 1

    def _send(self, method: str, path: str, *, authenticated: bool = True, **options: Any) -> httpx.Response:
        headers = {}
        if authenticated:
            if self._token is None:
                self._token = self._login()
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._client.request(method, path, headers=headers, **options)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise CommandError(f"cannot reach the Evento server at {self.credentials.url}: {reason}") from exc
        if response.is_success:
            return response
        raise CommandError(self._refusal(response))

    def _refusal(self, response: httpx.Response) -> str:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        if not isinstance(detail, str):
            detail = response.reason_phrase or "refused"
        if response.status_code == 401:
            return f"{self.credentials.url}: {detail} (401, user {self.credentials.user!r})"
        return f"{detail} ({response.status_code})"
