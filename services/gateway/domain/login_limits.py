"""Login limits: failed logins are counted per client address and per account and address, in memory.

Failed logins fill two token buckets: their client address's (``LOGIN_ADDRESS_BURST`` tokens,
one back every ``LOGIN_ADDRESS_REFILL_SECONDS``) and their account's at that address
(``LOGIN_ACCOUNT_*``). A login is looked at before anything else: either bucket empty, it is
refused with ``TooManyLogins`` carrying the seconds until a token is back (``Retry-After``),
and no hash is computed. Only a wrong password takes tokens, so a user who logs in correctly is
never slowed, however often or however many at once. Guesses sent all at once may pass the
look before the first of them has failed; they are as many as the hashing pool takes at most
(``PASSWORD_HASH_THREADS`` + ``PASSWORD_HASH_QUEUE``), and each takes its token when it fails,
past empty if need be, so the address then waits for all of them: over time, no address gets
more guesses than its burst and its refill allow.

Nothing locks an account as such. The account's bucket is keyed by address too, so someone
guessing one user's password from one address exhausts only their own pair and their address;
the user, from anywhere else, logs in at once, and the guesser's tokens come back with time.
(An account-wide lockout is exactly the lever that lets anyone lock a victim out.) Guessing
from many addresses is held to each address's rate, and argon2 makes every guess dear.

A bucket is one float: the monotonic time at which it is full again. A failure moves it on by
one refill period; the bucket is empty while that time is more than ``burst - 1`` periods ahead.
Each table keeps at most ``LOGIN_LIMIT_KEYS`` keys, least recently used dropped first; a key is
only written by a failure that got past both buckets, so filling the pair table costs an
attacker real, rate-limited guesses. Each gateway counts for itself: with N replicas behind a
balancer, an address gets up to N times the burst.
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
        """Take a token of ``key``'s, past empty if need be (the wait grows by one period)."""
        self._full_at[key] = max(self._full_at.get(key, now), now) + self.refill
        self._full_at.move_to_end(key)
        while len(self._full_at) > self.size:
            self._full_at.popitem(last=False)

    def __len__(self) -> int:
        return len(self._full_at)


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

    def check(self, address: str, username: str) -> None:
        """TooManyLogins if this address, or this account from it, has failed too often lately."""
        now = self.clock()
        wait = max(self.addresses.wait(address, now), self.pairs.wait(_pair(address, username), now))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise TooManyLogins(f"too many failed logins; try again in {retry_after} s", retry_after=retry_after)

    def failed(self, address: str, username: str) -> None:
        """Count a wrong password against the address and the account at that address."""
        now = self.clock()
        self.addresses.take(address, now)
        self.pairs.take(_pair(address, username), now)


def _pair(address: str, username: str) -> str:
    return f"{username.lower()}\0{address}"
