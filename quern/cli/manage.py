"""``quern apps``, ``quern queues``, ``quern cluster`` and ``quern admin``: what runs where, and who may."""

from __future__ import annotations

import json
from pathlib import Path

import click

from quern.cli.render import done, record, table
from quern.cli.session import Session, pass_session

QUEUE_COLUMNS = ("name", "id", "paused", "total", "counts")


@click.group()
def apps() -> None:
    """The apps you can run."""


@apps.command("list")
@pass_session
def list_apps(session: Session) -> None:
    """Every app in its current version."""
    table(session, session.client.apps.list(), ("name", "version", "disabled", "description"))


@apps.command("describe")
@click.argument("name")
@click.option("--version", help="A given version (default: the current one).")
@pass_session
def describe(session: Session, name: str, version: str | None) -> None:
    """An app's parameters (with defaults and bounds), input slots and outputs."""
    app = session.client.apps.get(name, version=version)
    if session.as_json:
        record(session, app)
        return
    record(session, app, ("name", "version", "description", "outputs"))
    required = set(app.parameters.get("required", []))
    rows = [
        {"parameter": key, "type": spec.get("type"), "default": spec.get("default"), "required": key in required,
         "description": spec.get("description")}
        for key, spec in app.parameters.get("properties", {}).items()
    ]  # fmt: skip
    table(session, rows, ("parameter", "type", "default", "required", "description"))
    slots = [{"input": slot, **spec} for slot, spec in app.inputs.items()]
    table(session, slots, ("input", "description"))


@click.group()
def queues() -> None:
    """Your queues: create, pause, resume, retry failed jobs, recover lost ones, delete."""


@queues.command("ls")
@pass_session
def list_queues(session: Session) -> None:
    """Your queues with their job counts per state."""
    table(session, session.client.queues.list(), QUEUE_COLUMNS)


@queues.command("create")
@click.argument("name")
@click.option("--description", help="What it is for.")
@pass_session
def create_queue(session: Session, name: str, description: str | None) -> None:
    """A new queue."""
    record(session, session.client.queues.create(name, description=description), ("id", "name", "paused"))


@queues.command("pause")
@click.argument("queue")
@pass_session
def pause(session: Session, queue: str) -> None:
    """Start nothing new from QUEUE (by name or id); running jobs finish."""
    record(session, session.client.queues.pause(queue), ("name", "paused", "counts"))


@queues.command("resume")
@click.argument("queue")
@pass_session
def resume(session: Session, queue: str) -> None:
    """Let QUEUE's jobs start again."""
    record(session, session.client.queues.resume(queue), ("name", "paused", "counts"))


@queues.command("retry")
@click.argument("queue")
@click.option("--state", "states", multiple=True, type=click.Choice(["FAILED", "TIMED_OUT", "CANCELED"]))
@click.option("--limit", type=click.IntRange(1, 10_000))
@pass_session
def retry(session: Session, queue: str, states: tuple[str, ...], limit: int | None) -> None:
    """Put QUEUE's failed jobs (or --state ones) back to QUEUED."""
    answer = session.client.queues.retry(queue, states=list(states) or None, limit=limit)
    more = " (more remain: run again)" if answer.get("more") else ""
    done(session, f"retried {len(answer['retried'])}, skipped {len(answer['skipped'])}{more}", **answer)


@queues.command("recover")
@click.argument("queue")
@pass_session
def recover(session: Session, queue: str) -> None:
    """Requeue QUEUE's running jobs whose worker is gone."""
    answer = session.client.queues.recover(queue)
    done(session, f"recovered {len(answer['recovered'])}", **answer)


@queues.command("rm")
@click.argument("queue")
@click.option("--force", is_flag=True, help="Delete its jobs too.")
@pass_session
def remove_queue(session: Session, queue: str, force: bool) -> None:
    """Delete QUEUE (it must be empty, unless --force)."""
    session.client.queues.delete(queue, force=force)
    done(session, f"queue {queue} deleted", queue=queue, deleted=True)


@click.command()
@pass_session
def cluster(session: Session) -> None:
    """Workers, their busy slots and heartbeats, queue depths and job counts."""
    info = session.client.cluster()
    if session.as_json:
        record(session, info)
        return
    table(session, info.workers, ("service", "host", "pid", "busy", "concurrency", "alive", "last_heartbeat"))
    depths = [{"queue": name, **depth} for name, depth in info.queues.items()]
    table(session, depths, ("queue", "messages", "consumers"))
    session.console.print(f"jobs: {info.jobs.get('queued', 0)} queued, {info.jobs.get('running', 0)} running")


@click.group()
def admin() -> None:
    """For admins: users, API keys, forced states and app registration."""


@admin.group("users")
def users() -> None:
    """Create, list, limit and disable users, and set their passwords."""


@users.command("ls")
@pass_session
def list_users(session: Session) -> None:
    """Every user."""
    table(session, session.client.users.list(), ("id", "username", "role", "disabled", "max_running", "created"))


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.password_option(help="At least 12 characters (asked for when not given).")
@pass_session
def create_user(session: Session, username: str, role: str, password: str) -> None:
    """A new user."""
    record(session, session.client.users.create(username, password, role=role), ("id", "username", "role"))


@users.command("limit")
@click.argument("user_id")
@click.argument("max_running", type=click.IntRange(0), required=False)
@pass_session
def limit(session: Session, user_id: str, max_running: int | None) -> None:
    """Cap the user's jobs running at once (no number: the deployment's default)."""
    record(session, session.client.users.set_max_running(user_id, max_running), ("id", "username", "max_running"))


@users.command("disable")
@click.argument("user_id")
@pass_session
def disable_user(session: Session, user_id: str) -> None:
    """Disable a user: their tokens, keys and open event streams stop working within seconds."""
    session.client.users.disable(user_id)
    done(session, f"user {user_id} disabled", id=user_id, disabled=True)


@users.command("set-password")
@click.argument("user_id")
@click.password_option(help="At least 12 characters (asked for twice when not given).")
@pass_session
def set_password(session: Session, user_id: str, password: str) -> None:
    """Set a user's password: every token and web UI session of theirs ends."""
    record(session, session.client.users.set_password(user_id, password), ("id", "username", "disabled"))


@admin.group("keys")
def keys() -> None:
    """API keys (for services): create, list, revoke."""


@keys.command("create")
@click.argument("name")
@pass_session
def create_key(session: Session, name: str) -> None:
    """A new API key; its secret is shown only now."""
    key = session.client.keys.create(name)
    record(session, key, ("id", "name", "secret"))


@keys.command("ls")
@pass_session
def list_keys(session: Session) -> None:
    """API keys (an admin sees everyone's)."""
    table(session, session.client.keys.list(), ("id", "name", "owner", "created", "revoked"))


@keys.command("revoke")
@click.argument("key_id")
@pass_session
def revoke_key(session: Session, key_id: str) -> None:
    """Revoke an API key at once."""
    session.client.keys.revoke(key_id)
    done(session, f"key {key_id} revoked", id=key_id, revoked=True)


@admin.command("force-state")
@click.argument("job_id")
@click.argument("state", type=click.Choice(["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELED"]))
@click.option("--reason", required=True, help="Why; recorded in the job's history.")
@pass_session
def force_state(session: Session, job_id: str, state: str, reason: str) -> None:
    """Force a job into STATE (to unstick it)."""
    job = session.client.jobs.force_state(job_id, state, reason)
    done(session, f"job {job.id} is {job.state}", id=job.id, state=job.state)


@admin.group("apps")
def admin_apps() -> None:
    """Register apps and versions, disable and enable them."""


@admin_apps.command("register")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_session
def register(session: Session, definition: Path) -> None:
    """Register DEFINITION (an app.json): a new app, or a new version of one."""
    try:
        body = json.loads(definition.read_text())
    except ValueError as exc:
        raise click.BadParameter(f"{definition} is not JSON: {exc}") from exc
    app = session.client.apps.register(body)
    done(session, f"registered {app.name} {app.version}", name=app.name, version=app.version)


@admin_apps.command("disable")
@click.argument("name")
@click.option("--version", help="Only this version.")
@pass_session
def disable_app(session: Session, name: str, version: str | None) -> None:
    """New jobs may no longer use NAME (or one version of it)."""
    app = session.client.apps.disable(name, version=version)
    done(session, f"{app.name} disabled", name=app.name, version=version)


@admin_apps.command("enable")
@click.argument("name")
@click.option("--version", help="Only this version.")
@pass_session
def enable_app(session: Session, name: str, version: str | None) -> None:
    """Let new jobs use NAME (or one version of it) again."""
    app = session.client.apps.enable(name, version=version)
    done(session, f"{app.name} enabled", name=app.name, version=version)
