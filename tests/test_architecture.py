"""The house rules of shared/DESIGN.md ("Layout"), checked on the source and on what an import
loads: which package may import which, where numba lives, what the report may do, module size.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"

# package -> the engine packages it may import (besides itself). ``io`` and ``validation``
# need each other at module level in one direction each: validation writes its quarantine
# file through ``engine.io.atomic``; io's partitioning and out-of-core sort validate.
ALLOWED: dict[str, set[str]] = {
    "schema": set(),
    "exceptions": set(),
    "io": {"schema", "exceptions", "validation"},
    "validation": {"schema", "exceptions", "io"},
    "features": {"schema", "exceptions", "io", "validation"},
    "kmeans": {"exceptions"},
    "segments": {"schema", "exceptions", "io", "kmeans"},
    "insights": {"schema", "exceptions", "io", "validation", "features"},
    "distributed": {
        *("schema", "exceptions", "io", "validation", "features", "kmeans", "segments"),
        "cohorts",
    },
    "report": {"io"},
    "cohorts": {"schema", "exceptions", "io", "validation", "features"},
    "clv": {"schema", "exceptions", "io", "validation", "features"},
    "predict": {"schema", "exceptions", "io", "validation", "features"},
    "recommend": {"schema", "exceptions", "io", "validation", "features"},
    "experiments": {"schema", "exceptions", "io", "validation", "features"},
    "dashboard": {"io", "report"},
    "pipeline": {
        *("schema", "exceptions", "io", "validation", "features", "kmeans", "segments"),
        *("insights", "distributed", "report", "cohorts", "clv", "predict"),
    },
    "commands": {
        *("schema", "exceptions", "io", "validation", "features", "segments", "insights"),
        *("cohorts", "clv", "predict", "pipeline"),
    },
}
# Only the atomic writer of io may be imported by these (they sit below the rest of io).
ONLY_ATOMIC_FROM_IO = {"validation", "report", "dashboard"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def package_of(path: Path) -> str:
    """engine/features/stage.py -> features; engine/pipeline.py -> pipeline."""
    parts = path.relative_to(ENGINE).parts
    return parts[0].removesuffix(".py")


def engine_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "engine" and len(parts) > 1 else None


def test_every_engine_package_is_declared() -> None:
    found = {
        package_of(p) for p in modules("engine") if p.name != "__init__.py" or p.parent != ENGINE
    }
    assert found - {"__init__"} <= set(ALLOWED) | {"cli"}


@pytest.mark.parametrize("path", modules("engine"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_go_one_way(path: Path) -> None:
    own = package_of(path)
    if own in ("cli", "__init__"):
        return
    for module in imports_of(path):
        other = engine_package(module)
        if other is None or other == own:
            continue
        assert other in ALLOWED[own], f"{path}: {own} may not import {module}"
        if own in ONLY_ATOMIC_FROM_IO and other == "io":
            assert module == "engine.io.atomic", f"{path}: only engine.io.atomic, not {module}"


def test_nothing_imports_the_cli() -> None:
    for path in modules("engine") + modules("synth"):
        if path.is_relative_to(ENGINE / "cli"):
            continue
        assert not any(m.startswith("engine.cli") for m in imports_of(path)), path


def test_a_stage_never_imports_another_packages_stage() -> None:
    for path in ENGINE.glob("*/stage.py"):
        own = package_of(path)
        for module in imports_of(path):
            other = engine_package(module)
            assert not (module.endswith(".stage") and other != own), f"{path} imports {module}"


def test_synth_imports_only_the_contract_and_the_atomic_writer() -> None:
    for path in modules("synth"):
        engine_imports = {m for m in imports_of(path) if m == "engine" or m.startswith("engine.")}
        assert engine_imports <= {"engine.schema", "engine.exceptions", "engine.io.atomic"}, path


def test_only_kernel_modules_import_numba() -> None:
    users = {
        p.relative_to(ROOT).as_posix()
        for p in modules("engine") + modules("synth")
        if any(m.split(".")[0] == "numba" for m in imports_of(p))
    }
    assert users and all(Path(u).name == "_kernels.py" for u in users), users


def test_features_and_kmeans_do_not_import_each_other() -> None:
    for path in modules("engine/features"):
        assert not any(engine_package(m) == "kmeans" for m in imports_of(path)), path
    for path in modules("engine/kmeans"):
        assert not any(engine_package(m) == "features" for m in imports_of(path)), path


def test_the_report_never_computes() -> None:
    """The report lays out what the stages computed: no queries, no file reads, no engine
    package that computes."""
    for path in modules("engine/report"):
        source = path.read_text()
        for forbidden in (".collect(", "group_by(", "scan_parquet(", "read_parquet(", ".agg("):
            assert forbidden not in source, f"{path}: {forbidden}"


def _collects(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            func = inner.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("collect", "collect_all"):
                return True
    return False


# Functions that return a plan yet read data on purpose, each with its reason.
READS_WHILE_OPENING = {
    # Opening a file reads its footer or header and, for CSV, one row: an empty or corrupt
    # file is reported when it is opened, naming it, not later in the middle of a query.
    "engine/io/dataset.py:scan_files",
}


def test_functions_that_return_a_lazy_plan_never_collect() -> None:
    """A query that collects while its plan is built reads data the caller did not ask for
    (and again every time the plan is built): such collects belong to the edge."""
    offenders = set()
    for path in modules("engine"):
        for node in ast.walk(ast.parse(path.read_text())):
            returns = getattr(node, "returns", None)
            lazy = returns is not None and ast.unparse(returns) in ("pl.LazyFrame", "LazyFrame")
            if isinstance(node, ast.FunctionDef) and lazy and _collects(node):
                offenders.add(f"{path.relative_to(ROOT).as_posix()}:{node.name}")
    assert offenders == READS_WHILE_OPENING


def test_modules_are_small() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in modules("engine") + modules("synth")}
    assert max(sizes.values()) <= 400, max(sizes, key=sizes.__getitem__)
    for path in modules("engine/cli"):
        assert sizes[path] < 300, path


def test_importing_synth_does_not_load_heavy_engine_parts() -> None:
    code = "import sys, synth; print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'sklearn', 'plotly', 'engine'))))"
    loaded = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(",")
    )
    assert set(loaded) <= {
        "engine",
        "engine.schema",
        "engine.exceptions",
        "engine.io",
        "engine.io.atomic",
    }


def test_the_command_line_loads_heavy_parts_only_when_a_command_needs_them() -> None:
    """`ecomscale generate` or `--help` should not pay for numba, scikit-learn or plotly
    (seconds of start-up and a hundred MB of memory)."""
    code = "import sys, engine.cli; print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(",")
    )
    assert not loaded & {"numba", "sklearn", "plotly", "dask", "distributed"}
