"""DaskRows: the K-Means RowSource whose rows live on Dask workers (engine.distributed).

Row i is row i of the concatenation of the partitions in order. The driver draws every
random index; only sampled rows and per-centre reductions of full passes travel to it, and
labels are recomputed on the workers from the final centres where they are needed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.kmeans.rows import assign_chunks, farthest_rows

if TYPE_CHECKING:
    from distributed import Client, Future


def _take(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return matrix[rows]


def _pass_totals(
    matrix: np.ndarray, centers: np.ndarray, with_sums: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, inertia, sums, weight = assign_chunks(matrix, centers, np.ones(1), with_sums)
    return inertia, sums, weight


def labels_for(matrix: np.ndarray, centers: np.ndarray, rows: np.ndarray | None = None) -> Any:
    """Labels of a partition's rows (all, or ``rows``) for the centres a fit ended with."""
    chosen = matrix if rows is None else np.ascontiguousarray(matrix[rows])
    return assign_chunks(chosen, centers, np.ones(1), False)[0]


def _labels_at(centers: np.ndarray, matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return labels_for(matrix, centers, rows)


class DaskRows:
    """A RowSource (engine.kmeans.estimator) over float32 matrices held by Dask workers.

    Row i is row i of the concatenation of ``matrices`` in order. Only sampled rows and
    per-centre reductions travel to the driver.
    """

    def __init__(self, client: Client, matrices: list[Future], sizes: list[int]) -> None:
        self.client, self.matrices = client, matrices
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_samples = int(self.offsets[-1])
        self.dtype = self.center_dtype = np.dtype(np.float32)
        self.concurrent = True  # fits wait on round trips, not on the driver's cores

    def _by_part(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(partition, positions in ``rows``, local row numbers) for each partition used."""
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for part in np.unique(part_of).tolist():
            positions = np.flatnonzero(part_of == part)
            yield part, positions, rows[positions] - self.offsets[part]

    def _gather_rows(self, handles: list[Future], rows: np.ndarray, func: Any) -> np.ndarray:
        # Each distinct row travels once (mini-batches drawn with replacement repeat rows).
        unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        pieces = [
            (positions, self.client.submit(func, handles[part], local))
            for part, positions, local in self._by_part(unique)
        ]
        values = self.client.gather([future for _, future in pieces])
        out = np.empty((unique.size, *values[0].shape[1:]), dtype=values[0].dtype)
        for (positions, _), value in zip(pieces, values, strict=True):
            out[positions] = value
        return out[inverse]

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._gather_rows(self.matrices, rows, _take)

    def batches(self, indices: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        rows = self.take(np.concatenate(indices))  # one round trip for several steps
        size = indices[0].size
        return [
            (rows, np.arange(i * size, (i + 1) * size, dtype=np.int64)) for i in range(len(indices))
        ]

    def full_pass(
        self, centers: np.ndarray, with_sums: bool, labels: Any = None
    ) -> tuple[float, Any, Any, Any]:
        # One task per partition returns only the reductions. The labels handle is the
        # centres themselves: labels are recomputed from them where needed (a sample for
        # the silhouette, each partition at the end), so none are kept per pass.
        totals = self.client.gather(
            [self.client.submit(_pass_totals, m, centers, with_sums) for m in self.matrices]
        )
        inertia = math.fsum(np.concatenate([t[0] for t in totals]))
        if not with_sums:
            return inertia, None, None, centers.copy()
        sums = np.concatenate([t[1] for t in totals]).sum(axis=0)
        weight = np.concatenate([t[2] for t in totals]).sum(axis=0)
        return inertia, sums, weight, centers.copy()

    def farthest(self, centers: np.ndarray, m: int) -> np.ndarray:
        found = self.client.gather(
            [self.client.submit(farthest_rows, matrix, centers, m) for matrix in self.matrices]
        )
        dist = np.concatenate([f[0] for f in found])
        rows = np.concatenate([f[1] for f in found])
        return rows[np.argsort(-dist, kind="stable")[:m]]  # ties: partition order = index

    def labels_at(self, handle: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The labels of a fit (``fit_rows``' handle: its final centres) at global rows."""
        return self._gather_rows(self.matrices, rows, functools.partial(_labels_at, handle))
