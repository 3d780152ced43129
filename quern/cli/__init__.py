"""The ``quern`` command line, built only on the SDK (``quern.client``).

Exit status: 0 success; 1 a job that did not succeed; 2 a bad command line; 3 the service
refused or failed the request; 4 the service could not be reached; 5 a local file could not be
read or written; 130 interrupted.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import click
import httpx
from click.shell_completion import get_completion_class
from rich.markup import escape
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from quern.cli import data, jobs, manage
from quern.cli.options import global_options_everywhere
from quern.cli.render import done, record, table
from quern.cli.session import (
    EXIT_INTERRUPTED,
    EXIT_LOCAL,
    EXIT_SERVICE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Session,
    load_config,
    pass_session,
    save_config,
)
from quern.client import Client
from quern.errors import ApiError, QuernError, Unauthorized, Unreachable
from quern.transport import Retries

HELP = """Drive a quern job service: upload data, run apps, follow jobs, fetch results.

\b
Start here:
  quern login --url https://quern.example.org     # stores a token for later commands
  quern apps list                                   # what can run
  quern apps describe flood                         # its parameters and inputs
  quern run flood -p rain_mm=80 -i elevation=@valley.csv --wait --download results/

Every command takes --help. QUERN_URL and QUERN_TOKEN (a token or an API key) override what
`quern login` stored. Add --json for machine-readable output on stdout. The options below
(--url, --json, --retries) go before the command or after it.

\b
Exit status: 0 success, 1 a job that did not succeed, 2 a bad command line,
3 the service refused or failed the request, 4 the service could not be reached,
5 a local file could not be read or written.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="QUERN_URL", help="The gateway (default: what `quern login` stored, or 127.0.0.1:8000).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout instead of tables.")
@click.option(
    "--retries", envvar="QUERN_RETRIES", type=click.IntRange(1, 50), default=6, show_default=True,
    help="Attempts per request when the service is busy (429/503) or cannot be reached.",
)  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, url: str | None, as_json: bool, retries: int) -> None:
    session = Session.build(url=url, as_json=as_json, retries=Retries(attempts=retries))
    ctx.obj = ctx.with_resource(_closing(session))


class _closing:
    def __init__(self, session: Session) -> None:
        self.session = session

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc: object) -> None:
        self.session.close()


@cli.command()
@click.option("--username", "-u", prompt=True, help="Your user name (asked for when not given).")
@click.option(
    "--password", prompt=True, hide_input=True, help="Asked for when not given (safer than the command line)."
)
@pass_session
def login(session: Session, username: str, password: str) -> None:
    """Log in and store the token (0600, in your config directory) for later commands."""
    token = session.client.login(username, password)
    where = save_config({"url": session.url, "token": token.access_token, "expires_at": token.expires_at.isoformat()})
    done(session, f"logged in to {session.url} as {username}; token in {where} until {token.expires_at:%Y-%m-%d %H:%M}",
         url=session.url, expires_at=token.expires_at, config=str(where))  # fmt: skip


@cli.command()
@click.option(
    "--everywhere", is_flag=True, help="Also end every other token and web UI session of yours (API keys go on)."
)
@pass_session
def logout(session: Session, everywhere: bool) -> None:
    """Forget the stored token (with --everywhere, end every token and UI session of yours first)."""
    if everywhere:
        session.client.log_out_everywhere()
    stored = load_config()
    stored.pop("token", None)
    stored.pop("expires_at", None)
    where = save_config(stored)
    ended = "; every token and UI session of yours ended" if everywhere else ""
    done(session, f"logged out (token removed from {where}){ended}", logged_out=True, everywhere=everywhere)


@cli.command()
@click.option("--current", prompt="Current password", hide_input=True, help="Asked for when not given.")
@click.option(
    "--new", prompt="New password", hide_input=True, confirmation_prompt=True,
    help="At least 12 characters (asked for twice when not given).",
)  # fmt: skip
@pass_session
def passwd(session: Session, current: str, new: str) -> None:
    """Change your password: every token and web UI session of yours ends, and the stored token is renewed."""
    stored = load_config()
    token = session.client.change_password(current, new)
    renewed = bool(session.token) and stored.get("url") == session.url and stored.get("token") == session.token
    if renewed:  # the old token, now ended, came from `quern login`: keep the user logged in
        save_config({**stored, "token": token.access_token, "expires_at": token.expires_at.isoformat()})
    note = "; the stored token was renewed" if renewed else "; log in again where you were logged in"
    done(session, f"password changed{note}", changed=True, token_renewed=renewed)


@cli.command()
@pass_session
def whoami(session: Session) -> None:
    """Who the stored token or QUERN_TOKEN logs in as, and their usage against each quota."""
    me = session.client.me()
    if session.as_json or me.usage is None:
        record(session, me, None if session.as_json else ("id", "username", "role"))
        return
    record(session, me, ("id", "username", "role"))
    usage = me.usage.model_dump()
    rows = [{"quota": name, "used": use["used"], "limit": use["quota"]} for name, use in usage.items()]
    table(session, rows, ("quota", "used", "limit"))


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: add `eval "$(quern completion bash)"` to ~/.bashrc."""
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover  # click ships all three
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(cli, {}, "quern", "_QUERN_COMPLETE").source())


@cli.command(hidden=True)
@click.argument("app", default="flood")
@click.option("--apps-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("apps"))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--username", envvar="QUERN_USERNAME")
@click.option("--password", envvar="QUERN_PASSWORD")
@pass_session
def example(session: Session, app: str, apps_dir: Path, out: Path, username: str | None, password: str | None) -> int:
    """Run an app's shipped example end to end (what `just up` does)."""
    if username and not session.token:
        session.client.login(username, password or "")
    described = session.client.apps.get(app)
    sample = described.model_extra.get("example") if described.model_extra else None
    if not sample:
        raise click.UsageError(f"app {app} ships no example")
    root = (apps_dir / app).resolve()
    inputs = []
    for slot, relative in sample["inputs"].items():
        path = (root / relative).resolve()
        if not path.is_relative_to(root):  # the server names the file: never upload from outside the app
            raise click.UsageError(f"example input {slot} ({relative}) is outside {root}")
        inputs.append(f"{slot}=@{path}")
    params = [f"{key}={value}" for key, value in sample["params"].items()]
    code = jobs.submit(session, app, params, inputs, {}, wait=True, logs=True, into=out)
    listing = sorted(out.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if code == 0 and listing:
        for path in sorted(listing[-1].parent.rglob("*")):
            if path.is_file():
                session.console.print(f"  {path.stat().st_size:>10}  {escape(str(path.relative_to(out)))}")
    return code


cli.add_command(jobs.run)
cli.add_command(jobs.jobs)
cli.add_command(data.files)
cli.add_command(data.datasets)
cli.add_command(manage.apps)
cli.add_command(manage.queues)
cli.add_command(manage.cluster)
cli.add_command(manage.admin)


global_options_everywhere(cli, skip=frozenset({"completion"}))  # completion talks to no service


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quern`` console script; returns the exit status."""
    errors = Session(url="", token=None, as_json=False).errors

    def retrying(details: RetryDetails) -> None:
        # One dim line on stderr rather than stamina's default log output, which would land on stdout.
        cause = escape(str(details.caused_by) or type(details.caused_by).__name__)
        errors.print(f"[dim]{cause}; trying again in {details.wait_for:.1f} s[/dim]")

    set_on_retry_hooks([retrying])
    try:
        result = cli.main(args=argv, prog_name="quern", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.Abort:
        errors.print("aborted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_SERVICE
    except ApiError as exc:
        errors.print(f"[red]quern: {escape(str(exc))}[/red]")
        if isinstance(exc, Unauthorized):
            errors.print("log in with `quern login`, or set QUERN_TOKEN")
        return EXIT_SERVICE
    except Unreachable as exc:
        errors.print(f"[red]quern: cannot reach the service: {escape(str(exc))}[/red]")
        return EXIT_UNREACHABLE
    except httpx.TransportError as exc:  # a stream broke part-way (the SDK's own requests say Unreachable)
        errors.print(f"[red]quern: the connection to the service broke: {escape(str(exc) or type(exc).__name__)}[/red]")
        return EXIT_UNREACHABLE
    except (QuernError, tarfile.TarError, TimeoutError) as exc:
        errors.print(f"[red]quern: {escape(str(exc))}[/red]")
        return EXIT_SERVICE
    except OSError as exc:
        errors.print(f"[red]quern: {escape(str(exc))}[/red]")
        return EXIT_LOCAL
    except KeyboardInterrupt:
        errors.print("interrupted")
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


__all__ = ["Client", "cli", "main"]

if __name__ == "__main__":
    sys.exit(main())
