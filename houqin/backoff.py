"""How long to wait before trying again after failures: one rule for every retry in houqin (links,
InfluxDB writes, device commands, notifications, probes of a silent meter)."""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2**62 seconds is beyond any cap; a larger exponent would only risk an overflow.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base`` × 2^(n−1) seconds after the n-th failure in a row, at most ``cap``,
    times a random factor in [1 − ``jitter``, 1] so that clients that failed together do not all come
    back at the same instant."""

    base: float
    cap: float = float("inf")
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff: base {self.base}, cap {self.cap}, jitter {self.jitter}")

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (none after none)."""
        if failures < 1:
            return 0.0
        wait = min(self.cap, self.base * 2.0 ** min(failures - 1, _MAX_EXPONENT))
        if self.jitter:
            wait *= random.uniform(1.0 - self.jitter, 1.0)  # noqa: S311 - spreading retries, not a secret
        return wait
