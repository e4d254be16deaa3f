"""Log-ins: the one constant-time check of a user name and password, HTTP Basic parsing, and a throttle on failed
attempts. Used by the REST API's dependency and by the web guard in front of the whole app."""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time

Credentials = list[tuple[str, str]]


def credentials_match(credentials: Credentials, user: str, password: str) -> bool:
    """True when (user, password) is one of `credentials`. Every pair is compared, in constant time, so the time
    taken tells neither which user exists nor how much of a password was right."""
    given_user, given_password = user.encode(), password.encode()
    ok = False
    for u, p in credentials:
        ok |= secrets.compare_digest(given_user, u.encode()) & secrets.compare_digest(given_password, p.encode())
    return ok


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The (user, password) of an `Authorization: Basic ...` header, or None when there is none or it is malformed."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


class LoginThrottle:
    """Failed log-ins per client address: after `limit` failures within `window` seconds, further attempts from
    that address are refused until the window has passed (a success clears the count). A guessing attack that
    made 200 tries in 1.3 s now gets `limit` tries per window."""

    def __init__(self, limit: int = 10, window: float = 60.0):
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again (0: it may try now)."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[0] + self.window - time.monotonic()) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures[client] = self._recent(client) + [time.monotonic()]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> list[float]:
        cutoff = time.monotonic() - self.window
        return [t for t in self._failures.get(client, ()) if t > cutoff]
