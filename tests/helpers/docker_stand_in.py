"""A stand-in for the ``docker`` command line, for tests on machines without a Docker engine.

It understands what quern's docker driver sends, and nothing more: ``version`` answers the
runner's probe at start; ``run`` records its
arguments (one JSON line per call in ``$DOCKER_STAND_IN_LOG``), then does on the host what the
container would do with them: take the ``--user``, enter the ``--workdir``, keep only the
``--env`` variables (plus a ``PATH``, as an image has) and exec ``--entrypoint`` with the
arguments after the image. ``rm`` is recorded and answers like docker for an absent container.
An option it does not know fails the run (exit 1), so a changed command line is noticed.
"""

from __future__ import annotations

import json
import os
import sys

VALUED = {
    "--name", "--label", "--network", "--cap-drop", "--security-opt", "--user", "--workdir", "--mount",
    "--ulimit", "--memory", "--memory-swap", "--pids-limit", "--env", "--entrypoint",
}  # fmt: skip
FLAGS = {"--rm", "--init", "--read-only"}


def record(args: list[str]) -> None:
    with open(os.environ["DOCKER_STAND_IN_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")


def run(args: list[str]) -> None:
    options: dict[str, list[str]] = {}
    rest = list(args)
    while rest and rest[0].startswith("--"):
        option = rest.pop(0)
        if option in FLAGS:
            options.setdefault(option, [])
        elif option in VALUED and rest:
            options.setdefault(option, []).append(rest.pop(0))
        else:
            sys.exit(f"docker: unknown flag: {option}")
    if not rest:
        sys.exit("docker: 'docker run' requires at least 1 argument")
    arguments = rest[1:]  # rest[0] is the image, which the host stands in for
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for value in options.get("--env", []):
        key, _, text = value.partition("=")
        env[key] = text
    os.chdir(options["--workdir"][-1])
    uid, gid = (int(part) for part in options["--user"][-1].split(":"))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    entrypoint = options["--entrypoint"][-1]
    os.execve(entrypoint, [entrypoint, *arguments], env)


def main(args: list[str]) -> None:
    if args == ["version"]:  # the runner's probe at start: answered, not recorded
        print("Version: stand-in")
        sys.exit(0)
    record(args)
    if args[:1] == ["rm"]:
        sys.stderr.write(f"Error response from daemon: No such container: {args[-1]}\n")
        sys.exit(1)
    if args[:1] == ["run"]:
        run(args[1:])
    sys.exit(f"docker stand-in: {args[:1]} is not supported")


if __name__ == "__main__":
    main(sys.argv[1:])
