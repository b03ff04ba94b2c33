"""ecomscale engine: load and validate event logs, features, K-Means segments, insights, report.

Names are imported lazily (PEP 562) so that ``import engine.schema`` (what synth needs) does
not pull in numba, scikit-learn or plotly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MiniBatchKMeans": "engine.kmeans",
    "build_report": "engine.report",
    "category_list": "engine.features",
    "compute_features": "engine.features",
    "load_dataset": "engine.io.dataset",
    "segment": "engine.segments",
    "user_features": "engine.features",
    "validate_events": "engine.validation",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
