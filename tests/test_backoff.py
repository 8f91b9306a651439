"""The one backoff rule every retry in houqin uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from houqin.backoff import Backoff

bases = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
caps = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
jitters = st.floats(min_value=0.0, max_value=1.0)
counts = st.integers(min_value=1, max_value=10_000)


@given(bases, caps, counts)
def test_without_jitter_it_doubles_up_to_the_cap_and_never_shrinks(base: float, cap: float, failures: int) -> None:
    backoff = Backoff(base, cap)
    delay, following = backoff.delay(failures), backoff.delay(failures + 1)
    assert 0.0 <= delay <= cap and delay <= following
    assert delay == min(cap, base * 2.0 ** min(failures - 1, 62))


@given(bases, caps, jitters, counts)
def test_jitter_only_shortens_and_within_its_share(base: float, cap: float, jitter: float, failures: int) -> None:
    plain = Backoff(base, cap).delay(failures)
    jittered = Backoff(base, cap, jitter).delay(failures)
    assert plain * (1.0 - jitter) - 1e-9 <= jittered <= plain + 1e-9


def test_the_first_failures_of_each_retry_in_houqin() -> None:
    assert [Backoff(2.0).delay(n) for n in range(5)] == [0.0, 2.0, 4.0, 8.0, 16.0]  # commands (no cap)
    assert [Backoff(2.0, 300.0).delay(n) for n in (8, 9, 100_000)] == [256.0, 300.0, 300.0]  # notifications
    assert {round(Backoff(1.0, 1.0, 0.5).delay(3), 6) for _ in range(200)} <= {
        x / 1e6 for x in range(500_000, 1_000_001)
    }


@pytest.mark.parametrize("bad", [{"base": -1}, {"base": 1, "cap": -1}, {"base": 1, "jitter": 1.5}])
def test_a_nonsense_backoff_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**bad)
