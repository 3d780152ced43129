"""The global options (``--url``, ``--json``, ``--retries``), taken before the command or after it.

``quern --url U login`` and ``quern login --url U`` mean the same. The ``quern`` group declares
them, with their environment variables and defaults, and builds the Session from them; every
command and group below it takes a copy without either, which, when given, overrides the
Session before the command runs (the Session makes its client only when first asked for one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from quern.cli.session import Session
from quern.transport import Retries


def _url(session: Session, url: str) -> None:
    session.point_at(url)


def _json(session: Session, _: bool) -> None:
    session.as_json = True


def _retries(session: Session, attempts: int) -> None:
    session.retries = Retries(attempts=attempts)


# How each global option, given after the command, changes the Session the group built.
OVERRIDES: dict[str, Callable[[Session, Any], None]] = {"url": _url, "as_json": _json, "retries": _retries}


def _override(apply: Callable[[Session, Any], None]) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return  # not given after the command: the group's value stands
        session = ctx.find_object(Session)
        if session is None:  # pragma: no cover  # the group makes one before any command parses its options
            raise click.UsageError("no session to apply the option to")
        apply(session, value)

    return callback


def global_options_everywhere(group: click.Group, *, skip: frozenset[str] = frozenset()) -> None:
    """Give every command and group below ``group`` (but those named in ``skip``) a copy of its global options."""
    copies = [
        (option.opts, option.is_flag, option.type, option.help, OVERRIDES[option.name])
        for option in group.params
        if isinstance(option, click.Option) and option.name in OVERRIDES
    ]
    below = [command for name, command in group.commands.items() if name not in skip]
    while below:
        command = below.pop()
        for opts, is_flag, value_type, help_text, apply in copies:
            command.params.append(
                click.Option(
                    opts,
                    is_flag=is_flag,
                    type=None if is_flag else value_type,
                    expose_value=False,
                    callback=_override(apply),
                    help=help_text,
                )
            )
        if isinstance(command, click.Group):
            below.extend(command.commands.values())
