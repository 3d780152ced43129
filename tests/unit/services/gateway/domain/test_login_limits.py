from __future__ import annotations

import pytest

from services.gateway.domain.login_limits import Buckets, LoginLimits
from shared.errors import TooManyLogins


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, *, size: int = 100) -> LoginLimits:
    return LoginLimits(addresses=Buckets(4, 10.0, size), pairs=Buckets(2, 60.0, size), clock=clock)


def fail(guard: LoginLimits, address: str, username: str, times: int) -> None:
    for _ in range(times):
        guard.check(address, username)
        guard.failed(address, username)


def test_an_account_at_one_address_is_refused_after_its_burst_with_the_wait() -> None:
    clock = Clock()
    guard = limits(clock)
    fail(guard, "192.0.2.1", "ann", 2)
    with pytest.raises(TooManyLogins) as refused:
        guard.check("192.0.2.1", "ann")
    assert refused.value.retry_after == 60


def test_the_same_account_from_another_address_is_let_through() -> None:
    guard = limits(Clock())
    fail(guard, "192.0.2.1", "ann", 2)
    guard.check("198.51.100.7", "ann")


def test_an_address_is_refused_after_its_burst_whatever_the_account() -> None:
    guard = limits(Clock())
    fail(guard, "192.0.2.1", "ann", 2)
    fail(guard, "192.0.2.1", "bob", 2)
    with pytest.raises(TooManyLogins) as refused:
        guard.check("192.0.2.1", "carl")
    assert refused.value.retry_after == 10


def test_a_refusal_ends_once_a_token_is_back() -> None:
    clock = Clock()
    guard = limits(clock)
    fail(guard, "192.0.2.1", "ann", 2)
    clock.now += 59
    with pytest.raises(TooManyLogins, match="in 1 s"):
        guard.check("192.0.2.1", "ann")
    clock.now += 1
    guard.check("192.0.2.1", "ann")


def test_right_passwords_take_nothing() -> None:
    guard = limits(Clock())
    for _ in range(50):
        guard.check("192.0.2.1", "ann")
    assert len(guard.addresses) == len(guard.pairs) == 0


def test_guesses_that_passed_at_once_are_all_waited_for() -> None:
    clock = Clock()
    guard = limits(clock)
    for _ in range(6):  # six guesses at once passed the check before any failed
        guard.check("192.0.2.1", "ann")
    for _ in range(6):
        guard.failed("192.0.2.1", "ann")
    with pytest.raises(TooManyLogins) as refused:
        guard.check("192.0.2.1", "ann")
    assert refused.value.retry_after == 5 * 60  # the four past empty, then one token


def test_usernames_count_alike_whatever_their_case() -> None:
    guard = limits(Clock())
    fail(guard, "192.0.2.1", "ann", 1)
    fail(guard, "192.0.2.1", "ANN", 1)
    with pytest.raises(TooManyLogins):
        guard.check("192.0.2.1", "Ann")


def test_the_tables_keep_at_most_their_size_forgetting_the_least_recent() -> None:
    guard = limits(Clock(), size=3)
    for n in range(10):
        fail(guard, f"192.0.2.{n}", "ann", 1)
    assert len(guard.addresses) == len(guard.pairs) == 3
    fail(guard, "192.0.2.9", "ann", 1)  # the most recent is remembered: its pair is now empty
    with pytest.raises(TooManyLogins):
        guard.check("192.0.2.9", "ann")
