"""The README's performance tables are generated from benchmarks/results/*.json: they agree."""

from __future__ import annotations

import re

from benchmarks.readme_tables import MARKER, README, RENDERERS, rendered_readme


def test_readme_tables_match_the_committed_results() -> None:
    text = README.read_text()
    names = [m.group(2) for m in MARKER.finditer(text)]
    assert sorted(names) == sorted(RENDERERS), names  # every results file is shown once
    assert rendered_readme(text) == text, "run: python -m benchmarks.readme_tables"


def test_a_changed_figure_is_caught() -> None:
    text = README.read_text()
    block = next(MARKER.finditer(text))
    tampered = text.replace(block.group(3), re.sub(r"\d", "9", block.group(3), count=1), 1)
    assert rendered_readme(tampered) != tampered
