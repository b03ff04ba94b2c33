"""The features stage on Dask: one task per bucket, running the serial path's unit of work
(``engine.features.buckets.bucket_features``); the features stay on the workers."""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from engine.exceptions import ConfigError
from engine.features.buckets import as_of_from_scans, bucket_features, clean_events, scan_bucket
from engine.features.categories import category_list
from engine.features.result import FeatureResult, FeaturesConfig
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.io.dataset import Dataset
from engine.io.outofcore import bucket_quarantine
from engine.schema import PRODUCTS_FILE
from engine.segments.prepare import in_hash_order
from engine.validation import Policy, RuleScan, ValidationReport, merge_reports

if TYPE_CHECKING:
    from distributed import Client, Future


@dataclass
class DistributedFeatures:
    """Features computed on the workers: one future per non-empty bucket, users in hash order.

    ``result`` is the serial FeatureResult equivalent (features gathered only on request).
    """

    client: Client
    parts: list[Future]
    result: FeatureResult

    def gather(self) -> pl.DataFrame:
        """All features on the driver, sorted by user_id (what the serial path returns)."""
        return pl.concat(self.client.gather(self.parts)).sort("user_id")


def _require_buckets(dataset: Dataset) -> None:
    if not dataset.buckets:
        raise ConfigError(
            f"{dataset.source}: the distributed backend needs the bucketed layout. Hint: "
            f"`ecomscale partition {dataset.source} --buckets N --out DIR` (or generate with "
            "--buckets N), then point ecomscale at DIR"
        )


def _features_task(
    files: tuple[Path, ...],
    products_path: Path | None,
    scanned: RuleScan,
    bucket: int,
    as_of: dt.datetime,
    categories: list[str],
    config: FeaturesConfig,
) -> tuple[pl.DataFrame, ValidationReport]:
    """One bucket's unit of work (``bucket_features``), on a worker; users in hash order."""
    products = pl.read_parquet(products_path) if products_path is not None else None
    features, report = bucket_features(
        files,
        products,
        scanned,
        categories=categories,
        as_of=as_of,
        session_gap=config.session_gap,
        on_bad_rows=config.on_bad_rows,
        quarantine_dir=bucket_quarantine(config.quarantine_dir, bucket),
    )
    return in_hash_order(features), report


def compute_features_distributed(
    client: Client,
    dataset: Dataset,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
) -> DistributedFeatures:
    """Validate and compute user features with one task per bucket; features stay on workers.

    Same arguments and validation behaviour as ``engine.compute_features`` (keyword form of
    ``features_stage_distributed``).
    """
    quarantine = None if quarantine_dir is None else Path(quarantine_dir)
    config = FeaturesConfig(on_bad_rows, quarantine, as_of, session_gap)
    return features_stage_distributed(client, dataset, config)


def features_stage_distributed(
    client: Client, dataset: Dataset, config: FeaturesConfig
) -> DistributedFeatures:
    """``engine.features.features_stage`` with one task per bucket (the same units of work)."""
    _require_buckets(dataset)
    categories = category_list(dataset.products)
    buckets = [b for b, files in enumerate(dataset.buckets) if files]
    scans = client.gather(
        [client.submit(scan_bucket, dataset.buckets[b], config.on_bad_rows) for b in buckets]
    )
    as_of = as_of_from_scans(scans, config.as_of, dataset.source)
    products_path = dataset.source / PRODUCTS_FILE if dataset.products is not None else None
    jobs = [
        client.submit(
            _features_task,
            dataset.buckets[bucket],
            products_path,
            scanned,
            bucket,
            as_of,
            categories,
            config,
        )
        for bucket, scanned in zip(buckets, scans, strict=True)
    ]
    parts = [client.submit(operator.getitem, job, 0) for job in jobs]
    reports = client.gather([client.submit(operator.getitem, job, 1) for job in jobs])
    del jobs  # the parts keep what they need (and their lineage, for recomputation)
    report = merge_reports(reports, config.on_bad_rows, config.quarantine_dir, resorted=False)
    events = clean_events(
        dataset, config.on_bad_rows, as_of, dict(zip(buckets, scans, strict=True))
    )
    result = FeatureResult(None, report, as_of, categories, events)
    return DistributedFeatures(client, parts, result)
