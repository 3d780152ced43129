"""The account store against the test Mongo: ending a user's tokens moves their tokens_valid_after forward only."""

from __future__ import annotations

from datetime import timedelta

from shared.models import User, new_id, utcnow
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store


def a_user(**fields: object) -> User:
    return User.model_validate(
        {"id": new_id(), "username": f"u{new_id()[-8:]}", "password_hash": "h0", "created": utcnow(), **fields}
    )


def test_ending_tokens_sets_tokens_valid_after_to_now(settings: Settings) -> None:
    user = a_user()

    async def scenario(stores: Stores) -> tuple[User, User, User]:
        await stores.accounts.insert_user(user)
        return (
            await stores.accounts.revoke_tokens(user.id),
            await stores.accounts.set_password(user.id, "h1"),
            await stores.accounts.set_user_disabled(user.id, True),
        )

    started = utcnow()
    revoked, changed, disabled = in_store(settings, scenario)
    assert revoked.tokens_valid_after is not None and started <= revoked.tokens_valid_after <= utcnow()
    assert changed.password_hash == "h1" and changed.tokens_valid_after is not None
    assert changed.tokens_valid_after >= revoked.tokens_valid_after
    assert disabled.disabled and disabled.tokens_valid_after is not None
    assert disabled.tokens_valid_after >= changed.tokens_valid_after


def test_tokens_valid_after_never_moves_back(settings: Settings) -> None:
    # Another replica, its clock ahead, ended the user's tokens a minute "later" than now.
    ahead = utcnow() + timedelta(minutes=1)
    user = a_user(tokens_valid_after=ahead)

    async def scenario(stores: Stores) -> tuple[User, User]:
        await stores.accounts.insert_user(user)
        return await stores.accounts.revoke_tokens(user.id), await stores.accounts.set_user_disabled(user.id, False)

    revoked, enabled = in_store(settings, scenario)
    assert revoked.tokens_valid_after == ahead
    assert enabled.tokens_valid_after == ahead and not enabled.disabled
