"""Slows password guessing: too many failed sign-ins for one name within a window are refused for a while."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class LoginThrottle:
    """Counts failed sign-ins per key (a username, or a client address) in a sliding window.

    Kept in memory: a restart forgets it, which costs an attacker a restart of ours. The number of keys
    is capped so a flood of made-up names cannot grow memory without bound.
    """

    def __init__(self, max_failures: int = 5, window: float = 900.0, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` may try again; 0 when it is not blocked."""
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.max_failures:
            return 0
        return int(failures[0] + self.window - now) + 1

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.max_failures)
        failures.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures
