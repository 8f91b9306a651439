"""Slows password guessing without letting anyone lock anyone else out.

Two counts of failed sign-ins, kept in memory (a restart forgets them, which costs an attacker a restart
of ours), each bounded in the keys it holds so a flood of made-up names cannot grow memory:

- per name *and* address: after a few free failures, each further one doubles the wait before the next
  try from that address for that name (1 s, 2 s, 4 s … up to 15 minutes). A guesser slows only
  themselves; a student behind the same school NAT who types their own password is not touched.
- per name, over 15 minutes, a much higher count: once reached (a guess spread over many addresses), an
  address that has failed for that name waits too. An address that has not failed for it never does, so
  the right password from a user's own phone always signs in.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_DELAY = 900.0  # the longest wait a failure can earn (seconds)


@dataclass
class _Failures:
    count: int
    last: float


class GuessDelay:
    """Per-key growing delay: ``free`` failures cost nothing, then each doubles the wait (from ``base``
    seconds, at most ``MAX_DELAY``) before the key may try again. Failures older than ``window`` since the
    last one are forgotten."""

    def __init__(self, free: int = 5, base: float = 1.0, window: float = 900.0, max_keys: int = 100_000) -> None:
        self.free = free
        self.base = base
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if failures is None or failures.count < self.free:
            return 0
        delay = min(MAX_DELAY, self.base * 2 ** (failures.count - self.free))
        wait = failures.last + delay - now
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = _Failures(0, now)
        failures.count += 1
        failures.last = now
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def has_failed(self, key: str, now: float | None = None) -> bool:
        return self._recent(key, time.monotonic() if now is None else now) is not None

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> _Failures | None:
        failures = self._failures.get(key)
        if failures is not None and failures.last <= now - self.window:
            del self._failures[key]
            return None
        return failures


class LoginThrottle:
    """Counts failed sign-ins per key in a sliding window; ``retry_after`` is positive once ``max_failures``
    are in it."""

    def __init__(self, max_failures: int = 100, window: float = 900.0, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` is below its limit again; 0 when it is now."""
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


class SignInGuard:
    """The two counts together, as the sign-in route asks them."""

    def __init__(self, free_failures: int, name_failures: int) -> None:
        self.pairs = GuessDelay(free=free_failures)
        self.names = LoginThrottle(max_failures=name_failures)

    def retry_after(self, name: str, address: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        pair = f"{name}\0{address}"
        wait = self.pairs.retry_after(pair, now)
        if self.pairs.has_failed(pair, now):  # an address that never failed for this name is never held
            wait = max(wait, self.names.retry_after(name, now))
        return wait

    def failed(self, name: str, address: str, now: float | None = None) -> None:
        self.pairs.failed(f"{name}\0{address}", now)
        self.names.failed(name, now)

    def succeeded(self, name: str, address: str) -> None:
        self.pairs.succeeded(f"{name}\0{address}")
