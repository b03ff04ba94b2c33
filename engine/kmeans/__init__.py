"""Mini-batch K-Means with numba kernels, and choosing k."""

from engine.kmeans.estimator import MiniBatchKMeans

__all__ = ["MiniBatchKMeans"]
