"""Mini-batch K-Means with numba kernels, over rows in memory or on Dask workers."""

from engine.kmeans._kernels import compiled_in_this_process
from engine.kmeans.estimator import MiniBatchKMeans
from engine.kmeans.rows import InMemoryRows, RowSource, map_runs

__all__ = ["InMemoryRows", "MiniBatchKMeans", "RowSource", "compiled_in_this_process", "map_runs"]
