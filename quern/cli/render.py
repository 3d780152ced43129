"""How results are printed: a table (or key/value lines) for people, JSON with ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from quern.cli.session import Session


def plain(value: Any) -> Any:
    """JSON-ready data of a model, a list of them, or anything else."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def cell(value: Any) -> str:
    """One value as table text."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _field(item: Any, name: str) -> Any:
    value: Any = item
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def table(session: Session, rows: Iterable[Any], columns: Sequence[str]) -> None:
    """Rows as a table of ``columns`` (dotted names reach into fields), or as a JSON list."""
    rows = list(rows)
    if session.as_json:
        session.console.print_json(json.dumps(plain(rows)))
        return
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column.split(".")[-1].upper(), overflow="fold")
    for row in rows:
        grid.add_row(*(escape(cell(_field(row, column))) for column in columns))
    session.console.print(grid)
    if not rows:
        session.say("(none)")


def record(session: Session, item: Any, fields: Sequence[str] | None = None) -> None:
    """One resource as ``key: value`` lines (``fields``, or all of them), or as JSON."""
    data = plain(item)
    if session.as_json:
        session.console.print_json(json.dumps(data))
        return
    names = fields or list(data)
    width = max(len(name) for name in names) if names else 0
    for name in names:
        session.console.print(f"[bold]{escape(name):<{width}}[/bold]  {escape(cell(_field(item, name)))}")


def done(session: Session, message: str, **data: Any) -> None:
    """The result of a command that changes something: a line for people, ``data`` as JSON for scripts."""
    if session.as_json:
        session.console.print_json(json.dumps(plain(data)))
    else:
        session.console.print(escape(message))


def removed(session: Session, kind: str, ids: Iterable[str], delete: Callable[[str], None]) -> None:
    """Delete each of ``ids`` with ``delete``, saying so for each."""
    for item in ids:
        delete(item)
        done(session, f"{kind} {item} deleted", id=item, deleted=True)
