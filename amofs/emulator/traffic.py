"""Traffic: the request log and the rate limiter shared by all four listeners of one emulator.

Owns ``Req`` (one log record per answered request; control requests under ``/_emulator/`` are not logged),
the token bucket (``rate_limit`` requests/s, burst = max(1, rate), counted across every host, upload parts and
downloads included), the count of rate-limit violations and the "blocked" state that ``block_after`` turns on
and ``unblock()`` turns off. Thread-safe; holds no reference to the HTTP layer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Req", "Traffic"]


@dataclass(frozen=True)
class Req:
    """One request as the emulator saw it."""

    host: str  # 'account' | 'drive' | 'upload' | 'storage'
    method: str
    path: str  # without the query, as sent (percent-encoding kept)
    query: str
    status: int  # 499: the client went away before the request body was complete
    bytes_in: int  # request body bytes read
    bytes_out: int  # response body bytes sent (set out to send: a client that hung up may have got fewer)
    auth: bool  # an Authorization header was present
    time: float  # time.monotonic() when the request arrived

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Traffic:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[Req] = []
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._rate: float | None = None
        self.violations = 0
        self.blocked = False

    # -- log ---------------------------------------------------------------------------------------------------

    def record(self, req: Req) -> None:
        with self._lock:
            self._log.append(req)

    def entries(self, since: int = 0) -> list[Req]:
        with self._lock:
            return self._log[since:]

    def since(self, n: int) -> tuple[list[Req], int]:
        """Entries from index ``n`` on, and the index to ask for next time (``n`` past the end after a reset
        gives nothing and the current length)."""
        with self._lock:
            if n > len(self._log):
                return [], len(self._log)
            return self._log[n:], len(self._log)

    def __len__(self) -> int:
        with self._lock:
            return len(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def count(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        host: str | None = None,
        status: int | None = None,
    ) -> int:
        return sum(
            1
            for r in self.entries()
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
            and (host is None or r.host == host)
            and (status is None or r.status == status)
        )

    # -- rate limit --------------------------------------------------------------------------------------------

    def take(self, rate: float | None) -> float:
        """Spend one token; 0.0 when allowed, else the seconds until one would be available."""
        if rate is None or rate <= 0:
            self._rate = None
            return 0.0
        with self._lock:
            now = time.monotonic()
            burst = max(1.0, rate)
            if self._rate != rate:  # (re)configured: start with a full bucket
                self._rate, self._tokens, self._stamp = rate, burst, now
            self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate

    def violation(self, block_after: int | None) -> None:
        with self._lock:
            self.violations += 1
            if block_after is not None and self.violations >= block_after:
                self.blocked = True

    def unblock(self) -> None:
        """Forget violations and the block, and refill the bucket."""
        with self._lock:
            self.violations = 0
            self.blocked = False
            self._rate = None
