"""Imports go one way (HOUSE_STYLE 1): checked on the source, and on what an import loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def test_synth_imports_only_the_contract_from_engine() -> None:
    for path in modules("synth"):
        engine_imports = {m for m in imports_of(path) if m == "engine" or m.startswith("engine.")}
        assert engine_imports <= {"engine.schema", "engine.exceptions"}, path


def test_only_the_kernel_module_imports_numba() -> None:
    users = {
        p.relative_to(ROOT).as_posix()
        for p in modules("engine") + modules("synth")
        if any(m.split(".")[0] == "numba" for m in imports_of(p))
    }
    assert users == {"engine/kmeans/_kernels.py"}


def test_features_and_kmeans_do_not_import_each_other() -> None:
    for path in [ROOT / "engine" / "features.py"]:
        assert not any(m.startswith("engine.kmeans") for m in imports_of(path))
    for path in modules("engine/kmeans"):
        assert not any(m.startswith("engine.feat") for m in imports_of(path))


def test_importing_synth_does_not_load_heavy_engine_parts() -> None:
    code = "import sys, synth; print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'sklearn', 'plotly', 'engine'))))"
    loaded = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(",")
    )
    assert set(loaded) <= {"engine", "engine.schema", "engine.exceptions"}
