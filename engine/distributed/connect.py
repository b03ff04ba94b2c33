"""Connecting to a Dask cluster: a running scheduler, or a local cluster started here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.exceptions import ConfigError

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 10
INSTALL_HINT = "Hint: pip install 'ecomscale[distributed]'"


def require_dask() -> Any:
    """The ``distributed`` module, or a one-line ConfigError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"the distributed backend needs Dask. {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    local_cluster: int | None = None,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Client]:
    """A Dask client for a running scheduler, or for a local cluster started here.

    Args:
        scheduler: address of a running scheduler, e.g. tcp://10.0.0.5:8786.
        local_cluster: start this many local workers instead (processes by default).
        threads_per_worker: task threads per worker; Polars and numba in a worker process
            get as many threads, so workers x threads never oversubscribes the cores.
        processes: local workers as processes (False: threads, for tests and small data).
        timeout_s: how long to try to reach ``scheduler``.

    Raises:
        ConfigError: Dask is not installed, or the scheduler cannot be reached.
    """
    distributed = require_dask()
    import dask

    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=f"{timeout_s}s")
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout_s:g} s "
                f"({reason}). Hint: start one "
                f"with `dask scheduler` and workers with `dask worker {scheduler}`, or use "
                "--local-cluster N"
            ) from None
        with client:
            yield client
        return
    if local_cluster is None or local_cluster < 1:
        raise ConfigError.out_of_range("local_cluster", ">= 1 workers", local_cluster)
    threads = str(threads_per_worker)
    environ = {
        **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
        "POLARS_MAX_THREADS": threads,
        "NUMBA_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
    }
    # Nannies set these in this process's environment before spawning (so that Polars and
    # numba read them when the worker imports them) and leave them there: put them back.
    with _environ_restored(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = distributed.LocalCluster(
            n_workers=local_cluster,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=":0",  # any free port: clusters side by side do not clash
        )
        with cluster, distributed.Client(cluster) as client:
            yield client


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
