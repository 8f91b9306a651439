"""The sign-in throttle's window and memory bound, with an explicit clock."""

from api.login_throttle import LoginThrottle


def test_window_slides_and_success_clears() -> None:
    throttle = LoginThrottle(max_failures=3, window=100)
    for t in (0, 10, 20):
        assert throttle.retry_after("u", now=t) == 0
        throttle.failed("u", now=t)
    assert throttle.retry_after("u", now=30) == 71
    assert throttle.retry_after("u", now=100.5) == 0  # the first failure left the window
    throttle.failed("u", now=101)
    assert throttle.retry_after("u", now=101) > 0
    throttle.succeeded("u")
    assert throttle.retry_after("u", now=101) == 0


def test_keys_are_bounded() -> None:
    throttle = LoginThrottle(max_failures=1, window=100, max_keys=10)
    for n in range(1000):
        throttle.failed(f"name{n}", now=0)
    assert len(throttle._failures) == 10
    assert throttle.retry_after("name999", now=1) > 0
