"""Our import graph, ``TYPE_CHECKING`` and function-level imports included: no cycles, nothing across a boundary.

grimp (the graph behind import-linter) reads the source without importing it, so this needs no
servers and takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import grimp
import pytest

PACKAGES = ("shared", "services", "quern", "devstack", "bench")

# Cycles allowed for now: none. An entry allows exactly the imports along its chain (one more
# import among its modules makes it a new cycle), and an entry not found as listed fails the
# test, so the list cannot go stale.
KNOWN_CYCLES: tuple[tuple[str, ...], ...] = ()

SERVICES = ("services.gateway", "services.runner", "services.results")

# The gateway's API surfaces: every package under this one (native, and facades such as TES or a
# web UI) calls domain operations and HTTP plumbing, never another surface.
SURFACES = "services.gateway.surfaces"

# The gateway's layers: surfaces -> plumbing -> domain -> shared/, with scheduling beside the surfaces.
GATEWAY_LAYERS = (
    ("services.gateway.domain", "services.gateway.plumbing", "domain operations never see HTTP"),
    ("services.gateway.domain", SURFACES, "domain operations serve every surface, so they import none"),
    ("services.gateway.domain", "services.gateway.scheduling", "the scheduler calls domain operations, not back"),
    ("services.gateway.plumbing", SURFACES, "HTTP plumbing serves every surface, so it imports none"),
    ("services.gateway.plumbing", "services.gateway.scheduling", "HTTP plumbing knows nothing of scheduling"),
    ("services.gateway.scheduling", SURFACES, "the scheduler runs without any API surface"),
    ("services.gateway.scheduling", "services.gateway.plumbing", "the scheduler runs without HTTP"),
)


@dataclass(frozen=True)
class Boundary:
    """Nothing in ``importer`` may import anything in ``imported``, directly or through other modules."""

    importer: str
    imported: str
    why: str


def boundaries(modules: Collection[str], root: str = "") -> list[Boundary]:
    """The boundaries between our packages, each name under ``root`` (the top package of a synthetic tree)."""
    services = [root + name for name in SERVICES]
    surfaces = sorted(
        {
            ".".join(m.split(".")[: len((root + SURFACES).split(".")) + 1])
            for m in modules
            if m.startswith(root + SURFACES + ".")
        }
    )
    shared, quern = root + "shared", root + "quern"
    return [
        *(Boundary(a, b, "services share only shared/ and messages") for a in services for b in services if a != b),
        Boundary(shared, root + "services", "shared/ lies below every service"),
        Boundary(shared, quern, "the SDK is a client of the services, not a part of them"),
        Boundary(quern, root + "services", "the SDK speaks HTTP and installs without the services"),
        Boundary(quern, shared, "the SDK speaks HTTP and installs without the services"),
        *(Boundary(a, b, "API surfaces never import each other") for a in surfaces for b in surfaces if a != b),
        *(
            Boundary(root + a, root + b, why)
            for a, b, why in GATEWAY_LAYERS
            if root + a in modules and root + b in modules
        ),
    ]


def described(graph: grimp.ImportGraph, chain: tuple[str, ...]) -> list[str]:
    """The chain as ``a -> b -> c``, then the line of each import along it."""
    lines = [" -> ".join(chain)]
    for importer, imported in pairwise(chain):
        for detail in graph.get_import_details(importer=importer, imported=imported):
            lines.append(f"    {importer}:{detail['line_number']}  {detail['line_contents']}")
    return lines


@dataclass(frozen=True)
class Cycle:
    """Modules that import each other: every import among them that leads back, and one shortest cycle to read."""

    imports: frozenset[tuple[str, str]]
    chain: tuple[str, ...]

    def report(self, graph: grimp.ImportGraph) -> str:
        """The chain, the lines of its imports, and any other import of the group that leads back."""
        others = sorted(self.imports - set(pairwise(self.chain)))
        also = [f"    also {a} -> {b}" for a, b in others]
        return "\n".join([*described(graph, self.chain), *also])


def find_cycles(graph: grimp.ImportGraph) -> list[Cycle]:
    """Every group of modules that import each other (an import is in a cycle if its module leads back)."""
    looping = {
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if importer != imported and graph.chain_exists(importer=imported, imported=importer)
    }
    groups: list[set[str]] = []
    for pair in looping:
        joined = [group for group in groups if group & set(pair)]
        groups = [group for group in groups if group not in joined] + [set(pair).union(*joined)]
    cycles = []
    for group in groups:
        start = min(group)
        chains = [
            (start, *(graph.find_shortest_chain(importer=imported, imported=start) or ()))
            for imported in graph.find_modules_directly_imported_by(start)
            if imported in group
        ]
        chain = min(chains, key=lambda chain: (len(chain), chain))
        cycles.append(Cycle(frozenset(pair for pair in looping if pair[0] in group), chain))
    return sorted(cycles, key=lambda cycle: cycle.chain)


def imports_along(chain: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """The imports a listed cycle consists of."""
    return frozenset(pairwise(chain))


def new_cycles(graph: grimp.ImportGraph, known: Collection[tuple[str, ...]]) -> list[str]:
    """Each cycle that is not exactly one of ``known``, as a readable report."""
    allowed = {imports_along(chain) for chain in known}
    return [cycle.report(graph) for cycle in find_cycles(graph) if cycle.imports not in allowed]


def gone_cycles(graph: grimp.ImportGraph, known: Collection[tuple[str, ...]]) -> list[str]:
    """Each of ``known`` that is no longer a cycle exactly as listed."""
    found = {cycle.imports for cycle in find_cycles(graph)}
    return [
        f"not a cycle as listed in KNOWN_CYCLES (remove it): {' -> '.join(chain)}"
        for chain in known
        if imports_along(chain) not in found
    ]


def crossings(graph: grimp.ImportGraph, rules: list[Boundary]) -> list[str]:
    """Each chain of imports that crosses one of ``rules``, as a readable report."""
    found = []
    for rule in rules:
        for chain in sorted(
            graph.find_shortest_chains(importer=rule.importer, imported=rule.imported, as_packages=True)
        ):
            why = f"    {rule.importer} must not import {rule.imported}: {rule.why}"
            found.append("\n".join([*described(graph, chain), why]))
    return found


def fail_with(title: str, reports: list[str]) -> None:
    """Fail with every report, each readable on its own, and no traceback of the checker."""
    if reports:
        pytest.fail(f"{title}:\n\n" + "\n\n".join(reports), pytrace=False)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)


def test_no_modules_import_each_other(graph: grimp.ImportGraph) -> None:
    fail_with("import cycles (split the modules: each holds two concepts)", new_cycles(graph, KNOWN_CYCLES))


def test_every_known_cycle_still_exists(graph: grimp.ImportGraph) -> None:
    fail_with("stale KNOWN_CYCLES", gone_cycles(graph, KNOWN_CYCLES))


def test_no_import_crosses_a_boundary(graph: grimp.ImportGraph) -> None:
    fail_with("imports across a boundary", crossings(graph, boundaries(graph.modules)))


# The checker over small trees written for the purpose: it must report what it exists to find.
SKELETON = ("shared", "services/gateway", "services/runner", "services/results", "quern")
TYPE_CHECKING_ONLY = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    "
THREE_IN_A_RING = {
    "quern/a.py": "from synthetic.quern import b\n",
    "quern/b.py": "from synthetic.quern import c\n",
    "quern/c.py": "from synthetic.quern import a\n",
}
GW = "from synthetic.services.gateway."
RING = ("synthetic.quern.a", "synthetic.quern.b", "synthetic.quern.c", "synthetic.quern.a")


@pytest.mark.parametrize(
    ("files", "known", "expected"),
    [
        pytest.param(
            {
                "quern/a.py": "def load() -> object:\n    from synthetic.quern import b\n\n    return b\n",
                "quern/b.py": "from synthetic.quern import a\n",
            },
            (),
            ["synthetic.quern.a -> synthetic.quern.b -> synthetic.quern.a"],
            id="a cycle through a function-level import",
        ),
        pytest.param(
            {
                "services/runner/dirs.py": "from synthetic.services.runner.procs import Driver\n",
                "services/runner/procs.py": TYPE_CHECKING_ONLY + "from synthetic.services.runner.dirs import X\n",
            },
            (),
            ["synthetic.services.runner.dirs -> synthetic.services.runner.procs -> synthetic.services.runner.dirs"],
            id="a cycle behind TYPE_CHECKING",
        ),
        pytest.param(
            {
                "services/runner/a.py": TYPE_CHECKING_ONLY + "from synthetic.services.runner import b\n",
                "services/runner/b.py": "import os\n",
            },
            (),
            [],
            id="a one-way TYPE_CHECKING import is no cycle",
        ),
        pytest.param(THREE_IN_A_RING, (RING,), [], id="a known cycle is allowed"),
        pytest.param(
            {**THREE_IN_A_RING, "quern/c.py": "from synthetic.quern import a, b\n"},
            (RING,),
            [" -> ".join(RING), "not a cycle as listed in KNOWN_CYCLES (remove it): " + " -> ".join(RING)],
            id="one more import among a known cycle's modules is a new cycle",
        ),
        pytest.param(
            {},
            (RING,),
            ["not a cycle as listed in KNOWN_CYCLES (remove it): " + " -> ".join(RING)],
            id="a known cycle that is gone is stale",
        ),
        pytest.param(
            {"shared/settings.py": "import synthetic.services.runner.actors\n", "services/runner/actors.py": ""},
            (),
            ["synthetic.shared.settings -> synthetic.services.runner.actors"],
            id="shared importing a service",
        ),
        pytest.param(
            {
                "services/gateway/app.py": "def wire() -> None:\n    from synthetic.shared import bridge\n",
                "shared/bridge.py": "from synthetic.services.results import archives\n",
                "services/results/archives.py": "",
            },
            (),
            [
                "synthetic.services.gateway.app -> synthetic.shared.bridge -> synthetic.services.results.archives",
                "synthetic.shared.bridge -> synthetic.services.results.archives",
            ],
            id="a service importing another through shared",
        ),
        pytest.param(
            {"quern/client.py": "from synthetic.shared.errors import AppError\n", "shared/errors.py": ""},
            (),
            ["synthetic.quern.client -> synthetic.shared.errors"],
            id="the SDK importing shared",
        ),
        pytest.param(
            {
                "services/gateway/surfaces/ui/pages.py": GW + "surfaces.native import jobs\n",
                "services/gateway/surfaces/native/jobs.py": GW + "domain import submission\n",
                "services/gateway/domain/submission.py": "",
            },
            (),
            ["synthetic.services.gateway.surfaces.ui.pages -> synthetic.services.gateway.surfaces.native.jobs"],
            id="one API surface importing another",
        ),
        pytest.param(
            {
                "services/gateway/domain/submission.py": GW + "plumbing.bodies import read\n",
                "services/gateway/plumbing/bodies.py": "",
                "services/gateway/scheduling/dispatcher.py": GW + "surfaces.native import jobs\n",
                "services/gateway/surfaces/native/jobs.py": GW + "domain import submission\n",
            },
            (),
            [
                "synthetic.services.gateway.domain.submission -> synthetic.services.gateway.plumbing.bodies",
                "synthetic.services.gateway.scheduling.dispatcher -> synthetic.services.gateway.surfaces.native.jobs",
                "synthetic.services.gateway.scheduling.dispatcher -> synthetic.services.gateway.surfaces.native.jobs"
                " -> synthetic.services.gateway.domain.submission -> synthetic.services.gateway.plumbing.bodies",
            ],
            id="a gateway layer importing one above it",
        ),
    ],
)
def test_the_checker_reports_what_breaks_the_rules(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    known: tuple[tuple[str, ...], ...],
    expected: list[str],
) -> None:
    top = tmp_path / "synthetic"
    for path in [f"{package}/__init__.py" for package in SKELETON] + list(files):
        for package in Path(path).parents:
            (top / package).mkdir(parents=True, exist_ok=True)
            (top / package / "__init__.py").touch()
        (top / path).write_text(files.get(path, ""))
    monkeypatch.syspath_prepend(tmp_path)
    graph = grimp.build_graph("synthetic", exclude_type_checking_imports=False, cache_dir=None)
    found = [
        *new_cycles(graph, known),
        *gone_cycles(graph, known),
        *crossings(graph, boundaries(graph.modules, root="synthetic.")),
    ]
    assert [report.splitlines()[0] for report in found] == expected


def borrowed(graph: grimp.ImportGraph, top: str = "tests") -> list[str]:
    """Each import by a test module or conftest of another test module or conftest (only helpers may be shared)."""
    helpers = f"{top}.helpers"
    found = []
    for importer in sorted(graph.modules):
        if importer == helpers or importer.startswith(helpers + "."):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith(top + ".") and not (imported == helpers or imported.startswith(helpers + ".")):
                found.append("\n".join(described(graph, (importer, imported))))
    return found


def test_test_modules_share_only_helpers() -> None:
    graph = grimp.build_graph("tests", cache_dir=None)
    fail_with("tests importing other tests (move what they share into tests/helpers/)", borrowed(graph))


def test_the_test_rule_reports_a_test_module_importing_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "synthetic_tests"
    for path, text in {
        "__init__.py": "",
        "helpers/__init__.py": "",
        "helpers/clients.py": "",
        "api/__init__.py": "",
        "api/test_a.py": "from synthetic_tests.helpers import clients\n",
        "api/test_b.py": "from synthetic_tests.api.test_a import clients\n",
    }.items():
        (top / path).parent.mkdir(parents=True, exist_ok=True)
        (top / path).write_text(text)
    monkeypatch.syspath_prepend(tmp_path)
    graph = grimp.build_graph("synthetic_tests", cache_dir=None)
    assert [report.splitlines()[0] for report in borrowed(graph, "synthetic_tests")] == [
        "synthetic_tests.api.test_b -> synthetic_tests.api.test_a"
    ]
