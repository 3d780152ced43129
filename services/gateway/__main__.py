"""Start the gateway (``python -m services.gateway``), or create an admin (``... create-admin NAME``)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import getpass
import sys

import uvicorn
from pydantic import ValidationError

from services.gateway.app import create_app
from services.gateway.domain.accounts import create_user
from services.gateway.domain.hashing import HashingPool
from services.gateway.surfaces.native.users import NewUser
from shared.errors import AppError
from shared.logging import configure_logging
from shared.models import Role
from shared.settings import GatewaySettings, load
from shared.store import Stores

M_MMAP_THRESHOLD = -3


def return_large_buffers_to_the_os() -> bool:
    """Serve allocations of 1 MiB and more (upload parts) by mmap, so freeing them gives the memory back.

    glibc otherwise raises its mmap threshold after the first large free and keeps later parts in
    per-thread arenas: the gateway's RSS then grows with the number of pool threads that handled
    a part, not with what it holds. Setting the threshold explicitly turns that adjustment off.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False


def read_password() -> str:
    """The new password: one line of stdin when piped, else asked for twice on the terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (at least 12 characters): ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the passwords differ")
    return first


async def create_admin(settings: GatewaySettings, username: str, password: str) -> int:
    """Create an admin user in the configured database; 1 if the name is taken or Mongo does not answer."""
    try:
        wanted = NewUser(username=username, password=password, role=Role.ADMIN)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    stores = Stores.connect(settings, appname="quern-create-admin")
    hashing = HashingPool(threads=1, queue=0)
    try:
        await stores.prepare(event_retention_seconds=settings.event_retention_days * 86400)
        user = await create_user(
            accounts=stores.accounts,
            hashing=hashing,
            username=wanted.username,
            password=wanted.password.get_secret_value(),
            role=Role.ADMIN,
        )
    except AppError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    finally:
        await stores.close()
        hashing.close()
    print(f"created admin {user.username} ({user.id})")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Read settings, set up logging, then serve or run the command given."""
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    commands = parser.add_subparsers(dest="command")
    admin = commands.add_parser("create-admin", help="create an admin user; the password is read from stdin")
    admin.add_argument("username")
    args = parser.parse_args(argv)
    settings = load(GatewaySettings)
    configure_logging(settings)
    if args.command == "create-admin":
        sys.exit(asyncio.run(create_admin(settings, args.username, read_password())))
    return_large_buffers_to_the_os()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
