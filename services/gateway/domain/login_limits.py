"""Login limits: failed logins are counted per client address and per account and address, in memory.

Each login takes a token from two buckets before its password is checked: its client address's
(``LOGIN_ADDRESS_BURST`` tokens, one back every ``LOGIN_ADDRESS_REFILL_SECONDS``) and its
account's at that address (``LOGIN_ACCOUNT_*``). Either empty, the login is refused with
``TooManyLogins`` carrying the seconds until a token is back (``Retry-After``), and no hash is
computed. A right password gives both tokens back, as does a check that could not be made (the
hash pool was full, Mongo did not answer), so only wrong passwords use them up: a user who logs
in correctly is never slowed, however often, and tokens are taken before the check so that a
burst of concurrent guesses cannot all pass before the first failure is counted.

Nothing locks an account as such. The account's bucket is keyed by address too, so someone
guessing one user's password from one address exhausts only their own pair and their address;
the user, from anywhere else, logs in at once, and the guesser's tokens come back with time.
(An account-wide lockout is exactly the lever that lets anyone lock a victim out.) Guessing
from many addresses is held to each address's rate, and argon2 makes every guess dear.

A bucket is one float: the monotonic time at which it is full again. Taking a token moves it on
by one refill period; the bucket is empty when that time is more than ``burst`` periods ahead.
Each table keeps at most ``LOGIN_LIMIT_KEYS`` keys, least recently used dropped first; a key is
only written when a login got past both buckets, so filling the pair table costs an attacker
real, rate-limited guesses. Each gateway counts for itself: with N replicas behind a balancer,
an address gets up to N times the burst.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.errors import TooManyLogins
from shared.settings import GatewaySettings


@dataclass
class Buckets:
    """Token buckets by key: ``burst`` tokens, one back every ``refill`` seconds; at most ``size`` keys."""

    burst: int
    refill: float
    size: int
    _full_at: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a token (0: it has one now)."""
        ahead = max(self._full_at.get(key, now), now) + self.refill - now
        return max(0.0, ahead - self.burst * self.refill)

    def take(self, key: str, now: float) -> None:
        """Take a token of ``key``'s (after ``wait`` said there is one)."""
        self._full_at[key] = max(self._full_at.get(key, now), now) + self.refill
        self._full_at.move_to_end(key)
        while len(self._full_at) > self.size:
            self._full_at.popitem(last=False)

    def give_back(self, key: str, now: float) -> None:
        """Return a token taken from ``key``; a full bucket is forgotten."""
        if key in self._full_at:
            self._full_at[key] -= self.refill
            if self._full_at[key] <= now:
                del self._full_at[key]

    def __len__(self) -> int:
        return len(self._full_at)


@dataclass(frozen=True)
class Attempt:
    """A login let through: ``give_back()`` unless its password turned out wrong."""

    limits: LoginLimits
    address: str
    pair: str

    def give_back(self) -> None:
        """The password was right, or could not be checked: the attempt does not count."""
        now = self.limits.clock()
        self.limits.addresses.give_back(self.address, now)
        self.limits.pairs.give_back(self.pair, now)


@dataclass
class LoginLimits:
    """The failed-login buckets of one gateway: per client address, and per account at an address."""

    addresses: Buckets
    pairs: Buckets
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def configured(cls, settings: GatewaySettings) -> LoginLimits:
        """Limits as the ``LOGIN_*`` settings say."""
        keys = settings.login_limit_keys
        return cls(
            addresses=Buckets(settings.login_address_burst, settings.login_address_refill_seconds, keys),
            pairs=Buckets(settings.login_account_burst, settings.login_account_refill_seconds, keys),
        )

    def admit(self, address: str, username: str) -> Attempt:
        """Take a token for this login from both buckets; TooManyLogins (nothing taken) if either is empty."""
        now, pair = self.clock(), f"{username.lower()}\0{address}"
        wait = max(self.addresses.wait(address, now), self.pairs.wait(pair, now))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise TooManyLogins(f"too many failed logins; try again in {retry_after} s", retry_after=retry_after)
        self.addresses.take(address, now)
        self.pairs.take(pair, now)
        return Attempt(self, address, pair)
