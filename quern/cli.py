"""The ``quern`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from quern.client import ApiError, Client


def run_example(client: Client, app: str, apps_dir: Path, out_dir: Path) -> int:
    """Upload an app's shipped example inputs, run it, download and list its archive."""
    spec = client.app(app)
    example = spec.get("example")
    if not example:
        print(f"app {app} ships no example", file=sys.stderr)
        return 2
    inputs = {}
    app_dir = (apps_dir / app).resolve()
    for slot, relative in example["inputs"].items():
        path = (app_dir / relative).resolve()
        if not path.is_relative_to(app_dir):  # the server names the file; never upload outside the app
            print(f"example input {slot!r} ({relative}) is outside {app_dir}; refusing to upload it", file=sys.stderr)
            return 2
        uploaded = client.upload(path)
        print(f"uploaded {relative} as file {uploaded['id']} ({uploaded['size']} bytes, sha256 {uploaded['sha256']})")
        inputs[slot] = uploaded["id"]
    job = client.submit(app, example["params"], inputs)
    print(f"job {job['id']} submitted ({app} {job['app_version']}, params {job['params']})")
    job = client.wait(job["id"])
    print(f"job {job['id']} {job['state']} in {job['elapsed_seconds']} s (exit code {job['exit_code']})")
    if job["state"] != "SUCCEEDED":
        print(f"error: {job['error']}", file=sys.stderr)
        return 1
    link = client.archive(job["id"])
    print(f"archive URL: {link['url']}")
    archive = client.download(link["url"], out_dir / f"{job['id']}.tar.gz")
    print(f"downloaded {archive} ({archive.stat().st_size} bytes); contents:")
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            print(f"  {member.size:>10}  {member.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quern`` console script."""
    parser = argparse.ArgumentParser(prog="quern", description="Drive a quern job service.")
    parser.add_argument("--url", default=os.environ.get("QUERN_URL", "http://127.0.0.1:8000"), help="gateway URL")
    commands = parser.add_subparsers(dest="command", required=True)
    example = commands.add_parser("example", help="run an app's shipped example end to end")
    example.add_argument("app", nargs="?", default="flood")
    example.add_argument("--apps-dir", type=Path, default=Path("apps"), help="where the app definitions live")
    example.add_argument("--out", type=Path, default=None, help="where to save the archive (default: a temp dir)")
    args = parser.parse_args(argv)

    client = Client(args.url, token=os.environ.get("QUERN_TOKEN"))
    try:
        if "QUERN_TOKEN" not in os.environ and "QUERN_USERNAME" in os.environ:
            client.login(os.environ["QUERN_USERNAME"], os.environ.get("QUERN_PASSWORD", ""))
        out_dir = args.out or Path(tempfile.mkdtemp(prefix="quern-example-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        return run_example(client, args.app, args.apps_dir, out_dir)
    except ApiError as exc:
        print(f"quern: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
