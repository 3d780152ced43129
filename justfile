# quern's workflows. `just` comes from PyPI: pip install rust-just

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")
bin := ".venv/bin"
# pytest workers for `just test`, each with servers and a stack of its own (0: one process)
workers := env_var_or_default("QUERN_TEST_WORKERS", "2")

# List the recipes
default:
    @just --list

# Create .venv (Python >= 3.11) and install quern with its development tools
install:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x {{bin}}/python ]; then
        {{python}} -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || { echo "quern needs Python >= 3.11; point PYTHON at one (PYTHON=python3.12 just ...)" >&2; exit 1; }
        {{python}} -m venv .venv
    fi
    if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
        {{bin}}/python -m pip install --quiet --upgrade pip
        {{bin}}/python -m pip install --quiet --editable '.[dev]'
        touch .venv/.installed
    fi

# Start the local stack (RabbitMQ, S3 and Mongo stand-ins, gateway, runner, results) and run an example job
up example="flood": install
    {{bin}}/python -m devstack up --example {{example}}

# Stop exactly what `just up` started
down:
    @if [ -x {{bin}}/python ]; then {{bin}}/python -m devstack down; else echo "nothing to stop (no .venv)"; fi

# Show which processes of the local stack are running
status: install
    {{bin}}/python -m devstack status

# Format the code, apply safe lint fixes, and generate the blocking SDK from the asyncio one
fmt: install
    {{bin}}/ruff format .
    {{bin}}/ruff check --fix .
    {{bin}}/python scripts/unasync.py

# ruff, ruff format --check, mypy --strict, and whether the generated blocking SDK is current
lint: install
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/mypy
    {{bin}}/python scripts/unasync.py --check

# Run the tests (starts the servers they need); extra arguments go to pytest
test *args: install
    {{bin}}/python -m pytest -n {{workers}} --dist loadfile --ignore=tests/engines {{args}}

# Real workflow engines on the TES facade (Snakemake; its image is built offline once, ~1-3 min)
engines *args: install
    {{bin}}/python -m pytest tests/engines {{args}}

# Refresh the screenshots the docs show (docs/screenshots/) from the browser tests
screenshots: install
    QUERN_SCREENSHOTS="$PWD/docs/screenshots" {{bin}}/python -m pytest tests/e2e/ui -q

# Run the unit tier alone: no servers, seconds
test-unit *args: install
    {{bin}}/python -m pytest tests/unit {{args}}

# Vendor swagger-ui-dist VERSION from npm as the /docs page's assets (then commit them; see their README.md)
vendor-swagger-ui version:
    #!/usr/bin/env bash
    set -euo pipefail
    dest=services/gateway/plumbing/static/swagger-ui
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "swagger-ui-dist@{{version}}" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
    for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
        cp "$tmp/package/$file" "$dest/$file"
    done
    sed -i -E "s/Swagger UI [0-9]+\.[0-9]+\.[0-9]+/Swagger UI {{version}}/" "$dest/README.md" docs/api.md docs/operations.md
    git status --short "$dest" docs/api.md docs/operations.md

# Lint, then test
check: lint test

# As root: gateway and two runners on hosts of their own (network namespaces), one runner host cut off mid-run
multihost: install
    {{bin}}/python -m devstack.multihost

# As root: build deploy/Dockerfile with podman offline, run gateway, runner and results from it and the example job
image-check: install
    {{bin}}/python -m devstack.image_check

# Measure against bare baselines in the same run
bench: install
    {{bin}}/python -m bench

# 50 concurrent clients for 5 minutes of mixed work (submit, get, list, events, upload, download); exits 1 on any error
load *args: install
    {{bin}}/python -m bench.mixed_load {{args}}

# What one user or client can do to the rest: login flood, pathological glob, two big batches, fair share, quotas
abuse *args: install
    {{bin}}/python -m bench.abuse {{args}}

# Kill runners mid-job and stop RabbitMQ during submissions, then count lost, stuck and doubly run jobs
chaos *args: install
    {{bin}}/python -m devstack.chaos {{args}}
