"""Mini-batch K-Means with numba kernels, over rows in memory or on Dask workers."""

from engine.kmeans.estimator import FAST_SETTINGS, MiniBatchKMeans
from engine.kmeans.rows import InMemoryRows, RowSource, compiled_in_this_process, map_runs

__all__ = [
    "FAST_SETTINGS",
    "InMemoryRows",
    "MiniBatchKMeans",
    "RowSource",
    "compiled_in_this_process",
    "map_runs",
]
