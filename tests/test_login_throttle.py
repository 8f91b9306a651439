"""The sign-in guard's counts with an explicit clock: growing delays per name and address, a wider limit
per name that never holds an address which has not failed, memory bounded."""

from api.login_throttle import MAX_DELAY, GuessDelay, LoginThrottle, SignInGuard


def test_each_failure_past_the_free_ones_doubles_the_wait() -> None:
    delay = GuessDelay(free=3, base=1.0, window=900)
    for t in (0, 1, 2):
        assert delay.retry_after("k", now=t) == 0
        delay.failed("k", now=t)
    assert delay.retry_after("k", now=2) == 1  # the third failure earns 1 s
    delay.failed("k", now=3)
    assert delay.retry_after("k", now=3) == 2
    delay.failed("k", now=5)
    assert delay.retry_after("k", now=5) == 4
    assert delay.retry_after("k", now=9.5) == 0
    for n in range(30):
        delay.failed("k", now=10 + n)
    assert delay.retry_after("k", now=39) == int(MAX_DELAY)  # capped at 15 minutes
    assert delay.retry_after("k", now=39 + 901) == 0  # forgotten a window after the last failure
    delay.failed("k", now=2000)
    delay.succeeded("k")
    assert delay.retry_after("k", now=2000) == 0


def test_keys_are_bounded() -> None:
    for throttle in (LoginThrottle(max_failures=1, window=100, max_keys=10), GuessDelay(free=1, max_keys=10)):
        for n in range(1000):
            throttle.failed(f"name{n}", now=0)
        assert len(throttle._failures) == 10
        assert throttle.retry_after("name999", now=0.5) > 0


def test_a_guesser_slows_only_themselves() -> None:
    guard = SignInGuard(free_failures=5, name_failures=100)
    for n in range(60):  # one address guessing one name, slowly enough to be let through each time
        guard.failed("li", "10.0.0.1", now=n * 1000.0)
    # Nobody else behind that address is held, nor the name from anywhere else.
    assert guard.retry_after("alice", "10.0.0.1", now=60_000) == 0
    assert guard.retry_after("li", "10.9.9.9", now=60_000) == 0


def test_a_guess_spread_over_many_addresses_holds_every_address_that_failed_but_no_other() -> None:
    guard = SignInGuard(free_failures=5, name_failures=100)
    for n in range(100):
        guard.failed("li", f"10.0.{n // 250}.{n % 250}", now=float(n))
    assert guard.retry_after("li", "10.0.0.7", now=100) > 0  # failed once: below its own limit, held by the name's
    assert guard.retry_after("li", "192.168.1.20", now=100) == 0  # never failed for li: the right password works
    assert guard.retry_after("li", "10.0.0.7", now=100 + 901) == 0  # the name's window has passed
