"""Logging in and who may see or manage a user's account: the domain operations against a real Mongo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.domain.accounts import (
    AccessToken,
    Caller,
    LoginGuard,
    check_may_manage,
    create_user,
    describe_user,
    disable_user,
    limit_user,
    log_in,
)
from services.gateway.domain.credentials import read_token
from services.gateway.domain.hashing import HashingPool
from services.gateway.domain.login_limits import Buckets, LoginLimits
from shared.errors import BadCredentials, Conflict, Forbidden, NotFound
from shared.models import Role, User
from shared.settings import Settings
from shared.store import Stores
from tests.helpers.records import in_store

SECRET = "s" * 48
PASSWORD = "a-long-password-1"
HASHING = HashingPool(threads=1, queue=8)


def guard() -> LoginGuard:
    return LoginGuard(HASHING, LoginLimits(addresses=Buckets(30, 2.0, 100), pairs=Buckets(5, 60.0, 100)))


async def a_user(stores: Stores, role: Role = Role.USER) -> User:
    return await create_user(
        accounts=stores.accounts, hashing=HASHING, username=f"u{role.value}", password=PASSWORD, role=role
    )


def test_login_answers_a_token_for_the_user_that_expires_after_the_ttl(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[User, AccessToken]:
        user = await a_user(stores)
        issued = await log_in(
            accounts=stores.accounts,
            guard=guard(),
            address="192.0.2.1",
            username=user.username,
            password=PASSWORD,
            secret=SECRET,
            ttl_seconds=600,
        )
        return user, issued

    started = datetime.now(UTC)
    user, issued = in_store(settings, scenario)
    assert read_token(issued.token, secret=SECRET).user_id == user.id
    assert started + timedelta(seconds=600) <= issued.expires <= datetime.now(UTC) + timedelta(seconds=600)


@pytest.mark.parametrize("refusal", ["wrong password", "unknown user", "disabled user"])
def test_every_refused_login_is_the_same_bad_credentials(settings: Settings, refusal: str) -> None:
    async def scenario(stores: Stores) -> str:
        user = await a_user(stores)
        username, password = user.username, PASSWORD
        if refusal == "wrong password":
            password = "not-the-password"
        elif refusal == "unknown user":
            username = "nobody"
        else:
            await stores.accounts.set_user_disabled(user.id, True)
        with pytest.raises(BadCredentials) as refused:
            await log_in(
                accounts=stores.accounts,
                guard=guard(),
                address="192.0.2.1",
                username=username,
                password=password,
                secret=SECRET,
                ttl_seconds=60,
            )
        return refused.value.detail

    assert in_store(settings, scenario) == "wrong username or password"


def test_another_users_account_is_not_found_before_it_is_forbidden() -> None:
    with pytest.raises(NotFound, match=r"^no user u2$"):
        check_may_manage("u2", Caller("u1", is_admin=False))


def test_a_user_may_not_manage_their_own_account() -> None:
    with pytest.raises(Forbidden):
        check_may_manage("u1", Caller("u1", is_admin=False))


def test_an_admin_may_manage_any_account() -> None:
    check_may_manage("u2", Caller("u1", is_admin=True))


def test_a_user_sees_themselves_and_not_another_user(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[User, User]:
        user, admin = await a_user(stores), await a_user(stores, Role.ADMIN)
        seen = await describe_user(accounts=stores.accounts, user_id=user.id, caller=Caller(user.id, is_admin=False))
        with pytest.raises(NotFound, match=f"^no user {admin.id}$"):
            await describe_user(accounts=stores.accounts, user_id=admin.id, caller=Caller(user.id, is_admin=False))
        return user, seen

    user, seen = in_store(settings, scenario)
    assert seen == user


def test_an_admin_cannot_disable_their_own_account(settings: Settings) -> None:
    async def scenario(stores: Stores) -> User:
        admin = await a_user(stores, Role.ADMIN)
        with pytest.raises(Conflict, match=r"^an admin cannot disable their own account$"):
            await disable_user(accounts=stores.accounts, user_id=admin.id, caller=Caller(admin.id, is_admin=True))
        return await stores.accounts.get_user(admin.id)

    assert in_store(settings, scenario).disabled is False


def test_an_admin_disables_another_account(settings: Settings) -> None:
    async def scenario(stores: Stores) -> tuple[User, User]:
        user, admin = await a_user(stores), await a_user(stores, Role.ADMIN)
        answered = await disable_user(accounts=stores.accounts, user_id=user.id, caller=Caller(admin.id, is_admin=True))
        return answered, await stores.accounts.get_user(user.id)

    answered, stored = in_store(settings, scenario)
    assert answered.disabled is True and stored.disabled is True


def test_a_users_limit_is_set_and_the_dispatcher_woken(settings: Settings) -> None:
    woken: list[bool] = []

    async def scenario(stores: Stores) -> User:
        user = await a_user(stores)
        await limit_user(accounts=stores.accounts, wake=lambda: woken.append(True), user_id=user.id, max_running=3)
        return await stores.accounts.get_user(user.id)

    assert in_store(settings, scenario).max_running == 3
    assert woken == [True]
