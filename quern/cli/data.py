"""``quern files ...`` and ``quern datasets ...``: the data jobs read."""

from __future__ import annotations

from pathlib import Path

import click

from quern.cli.jobs import upload_file
from quern.cli.progress import transfer
from quern.cli.render import done, record, removed, table
from quern.cli.session import Session, pass_session

FILE_COLUMNS = ("id", "name", "size", "sha256", "created")
DATASET_COLUMNS = ("id", "name", "kind", "member_count", "size", "tags", "created")


@click.group()
def files() -> None:
    """Upload, list, download and delete files."""


@files.command("upload")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Store it under this name (one file only).")
@pass_session
def upload(session: Session, paths: tuple[Path, ...], name: str | None) -> None:
    """Upload files, showing progress; large ones go straight to S3."""
    if name is not None and len(paths) > 1:
        raise click.UsageError("--name takes one file")
    uploaded = [upload_file(session, path, name) for path in paths]
    table(session, uploaded, FILE_COLUMNS)


@files.command("ls")
@click.option("--name-prefix", help="Only names starting so.")
@click.option("--limit", "-n", type=click.IntRange(1), default=50, show_default=True)
@pass_session
def list_files(session: Session, name_prefix: str | None, limit: int) -> None:
    """Your files, newest first."""
    found = session.client.files.list(name_prefix=name_prefix, limit=min(limit, 500))
    table(session, (item for _, item in zip(range(limit), found, strict=False)), FILE_COLUMNS)


@files.command("get")
@click.argument("file_id")
@click.argument("dest", type=click.Path(path_type=Path), default=".")
@pass_session
def get(session: Session, file_id: str, dest: Path) -> None:
    """Download a file to DEST (a directory: under its name), checking its sha256."""
    described = session.client.files.get(file_id)
    with transfer(session, f"download {described.name}", described.size) as moved:
        saved = session.client.files.download(file_id, dest, progress=moved)
    done(session, f"saved {saved}", path=str(saved), sha256=described.sha256)


@files.command("rm")
@click.argument("file_ids", nargs=-1, required=True)
@pass_session
def remove(session: Session, file_ids: tuple[str, ...]) -> None:
    """Delete files (refused while a queued or running job reads one)."""
    removed(session, "file", file_ids, session.client.files.delete)


@click.group()
def datasets() -> None:
    """Make datasets from zip or tar bundles, list, show and delete them."""


@datasets.command("create")
@click.argument("bundle")
@click.option("--name", required=True, help="The dataset's name.")
@click.option("--description", help="What it holds.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@pass_session
def create(session: Session, bundle: str, name: str, description: str | None, tags: tuple[str, ...]) -> None:
    """A dataset from BUNDLE: a local .zip/.tar/.tar.gz (uploaded now) or an uploaded file's id."""
    local = Path(bundle)
    file_id = upload_file(session, local).id if local.is_file() else bundle
    dataset = session.client.datasets.create(file_id, name, description=description, tags=list(tags) or None)
    record(session, dataset, None if session.as_json else ("id", "name", "kind", "member_count", "size", "tags"))


@datasets.command("ls")
@click.option("--tag", help="Only datasets with this tag.")
@pass_session
def list_datasets(session: Session, tag: str | None) -> None:
    """Your datasets, newest first."""
    table(session, session.client.datasets.list(tag=tag), DATASET_COLUMNS)


@datasets.command("show")
@click.argument("dataset_id")
@pass_session
def show(session: Session, dataset_id: str) -> None:
    """One dataset with its members."""
    dataset = session.client.datasets.get(dataset_id)
    if session.as_json:
        record(session, dataset)
        return
    record(session, dataset, ("id", "name", "description", "kind", "member_count", "size", "tags", "created"))
    table(session, dataset.members or [], ("path", "size", "sha256"))


@datasets.command("rm")
@click.argument("dataset_ids", nargs=-1, required=True)
@pass_session
def remove_dataset(session: Session, dataset_ids: tuple[str, ...]) -> None:
    """Delete datasets (refused while a queued or running job reads one)."""
    removed(session, "dataset", dataset_ids, session.client.datasets.delete)
