"""The ecomscale command line: generate, features, segment, report, run, partition.

The one place that ties synth and every engine stage together. Expected errors print one
line ("error: ...") and exit with status 2; no traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.exceptions import DatasetIOError, DataValidationError, EcomscaleError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_OUT = "ecomscale-out"
DEFAULT_BUCKETS = 16  # bucketed layout of the generated default dataset on a cluster


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def friendly_errors(func: F) -> F:
    """Turn expected errors (and unreadable data found mid-query) into one line + exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EcomscaleError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
            click.echo(f"error: cannot read the input: {_first_line(exc)}", err=True)
            sys.exit(2)
        except OSError as exc:  # reading or writing (a full disk, a file removed meanwhile)
            where = f"{exc.filename}: {exc.strerror}" if exc.filename else _first_line(exc)
            click.echo(f"error: {where}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _check_writable(folder: Path) -> None:
    """Fail before any work (a long features run, say) when nothing can be written under
    ``folder``, which need not exist yet: its nearest existing ancestor must be a writable
    folder."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        problem = f"{probe} is a file"
    elif not os.access(probe, os.W_OK | os.X_OK):
        problem = f"no permission to write in {probe}"
    else:
        return
    raise DatasetIOError(f"cannot write to {folder}: {problem}. Hint: choose another path")


def _require_file_columns(path: Path, needed: tuple[str, ...], hint: str) -> None:
    """A one-line error when the Parquet file at ``path`` lacks any of ``needed``."""
    present = set(pl.scan_parquet(path).collect_schema().names())
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataValidationError(f"{path}: no column {', '.join(missing)}. Hint: {hint}")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _parse_as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date/time (e.g. 2026-10-31T00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _parse_columns(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: expected CONTRACT=SOURCE, e.g. user_id=visitorid")
        key, value = pair.split("=", 1)
        mapping[key.strip()] = value.strip()
    return mapping


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecomscale")
def main() -> None:
    """ecomscale: e-commerce behavioural analytics at scale.

    \b
    ecomscale run                       # generate the default dataset, run everything
    ecomscale generate --users 1000000 --out data/
    ecomscale features data/ --out features.parquet
    ecomscale segment features.parquet --out segments.parquet
    ecomscale report data/ --features features.parquet --segments segments.parquet
    ecomscale run --local-cluster 2        # the same on a local Dask cluster
    ecomscale partition logs/ --buckets 64 --out bucketed/   # layout for Dask
    """


# --- generate ---------------------------------------------------------------------------------
def _generate(config: Any, out: Path, workers: int, overwrite: bool) -> dict[str, Any]:
    from synth import generate_dataset

    start = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("generating parts", total=None)

        def on_part(result: Any, total: int) -> None:
            progress.update(task, total=total, advance=1)

        manifest = generate_dataset(
            config, out, workers=workers, overwrite=overwrite, on_part=on_part
        )
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    table = Table(title=f"dataset written to {out}", show_header=False)
    table.add_row("users", f"{counts['users']:,}")
    table.add_row("products", f"{counts['products']:,}")
    table.add_row("events", f"{counts['events']:,}")
    for name, n in counts["event_types"].items():
        table.add_row(f"  {name}", f"{n:,} ({n / max(counts['events'], 1):.2%})")
    table.add_row("event parts", str(counts["parts"]))
    if manifest["dirty"]:
        table.add_row(
            "labelled defects", ", ".join(f"{k}={v:,}" for k, v in manifest["dirty"].items())
        )
    table.add_row("time", f"{seconds:.1f} s ({counts['events'] / seconds / 1e6:.2f} M events/s)")
    console.print(table)
    return manifest


@main.command()
@click.option("--users", type=int, default=None, help="Number of users (preset default: 100,000).")
@click.option("--days", type=int, default=None, help="Days in the event window (default 30).")
@click.option("--seed", type=int, default=None, help="Root seed (default 42).")
@click.option("--products", type=int, default=None, help="Catalogue size (default 20,000).")
@click.option("--separation", type=float, default=None, help="0..1: how distinct personas are.")
@click.option("--dirty", type=float, default=None, help="Share of events given labelled defects.")
@click.option(
    "--preset",
    default="default",
    show_default=True,
    help="default, tiny, large, rees46, retailrocket.",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, help="Dataset folder to create."
)
@click.option(
    "--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Worker processes."
)
@click.option(
    "--buckets",
    type=int,
    default=None,
    help="Write the bucketed layout for Dask with N buckets (default: parts by user range).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
@friendly_errors
def generate(
    users: int | None,
    days: int | None,
    seed: int | None,
    products: int | None,
    separation: float | None,
    dirty: float | None,
    preset: str,
    out: Path,
    workers: int,
    buckets: int | None,
    overwrite: bool,
) -> None:
    """Generate a synthetic dataset (users, products, events, planted personas)."""
    from synth import from_preset

    config = from_preset(
        preset,
        users=users,
        days=days,
        seed=seed,
        products=products,
        separation=separation,
        dirty=dirty,
        buckets=buckets,
    )
    _generate(config, out, workers, overwrite)


# --- features ---------------------------------------------------------------------------------
def _load(data: Path, fmt: str, preset: str | None, columns: tuple[str, ...]) -> Any:
    from engine.loading import load_dataset

    return load_dataset(data, format=fmt, preset=preset, columns=_parse_columns(columns))  # type: ignore[arg-type]


data_options = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["auto", "parquet", "csv"]),
        default="auto",
        show_default=True,
    ),
    click.option("--preset", default=None, help="Foreign layout preset, e.g. rees46."),
    click.option(
        "--column", "columns", multiple=True, help="CONTRACT=SOURCE column mapping; repeatable."
    ),
    click.option(
        "--on-bad-rows",
        type=click.Choice(["error", "drop", "quarantine"]),
        default="error",
        show_default=True,
        help="What to do with rows that break validation rules.",
    ),
]


def with_data_options(func: F) -> F:
    for option in reversed(data_options):
        func = option(func)
    return func


cluster_options = [
    click.option(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="Run on the Dask cluster at ADDRESS (e.g. tcp://host:8786); needs "
        "ecomscale[distributed] and a bucketed dataset the workers can read.",
    ),
    click.option(
        "--local-cluster",
        type=int,
        default=None,
        metavar="N",
        help="Run on a local Dask cluster of N worker processes (one thread each).",
    ),
]


def with_cluster_options(func: F) -> F:
    for option in reversed(cluster_options):
        func = option(func)
    return func


@contextlib.contextmanager
def _cluster(scheduler: str | None, local_cluster: int | None) -> Iterator[Any]:
    """A Dask client when asked for one, else None (the serial path)."""
    if scheduler is not None and local_cluster is not None:
        raise click.BadParameter("give --scheduler or --local-cluster, not both")
    if scheduler is None and local_cluster is None:
        yield None
        return
    from engine.distributed import connect

    with connect(scheduler, local_cluster) as client:
        console.print(f"dask: {len(client.scheduler_info(n_workers=-1)['workers'])} workers")
        yield client


def _report_validation(report: Any) -> None:
    if report.clean:
        console.print(f"validation: all {report.rows_in:,} rows passed")
        return
    lines = ", ".join(f"{rule}={n:,}" for rule, n in report.counts.items())
    console.print(f"validation: {report.rows_in:,} rows in, {report.rows_out:,} kept; {lines}")
    if report.resorted:
        console.print("validation: input was not sorted by (user_id, ts); it was sorted")
    if report.quarantine_path:
        console.print(f"validation: rejected rows written to {report.quarantine_path}")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("features.parquet"), show_default=True
)
@with_data_options
@click.option(
    "--as-of", default=None, help="Reference time for recency/tenure (ISO; default: last event)."
)
@click.option(
    "--session-gap", type=float, default=30.0, show_default=True, help="Session timeout in minutes."
)
@click.option(
    "--quarantine", type=click.Path(path_type=Path), default=Path("quarantine"), show_default=True
)
@with_cluster_options
@friendly_errors
def features(
    data: Path,
    out: Path,
    fmt: str,
    preset: str | None,
    columns: tuple[str, ...],
    on_bad_rows: str,
    as_of: str | None,
    session_gap: float,
    quarantine: Path,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Validate an event log and write one row of behavioural features per user."""
    from engine.featurize import compute_features, write_parquet_atomic

    _check_writable(out.parent)
    if on_bad_rows == "quarantine":
        _check_writable(quarantine)
    dataset = _load(data, fmt, preset, columns)
    start = time.perf_counter()
    with _cluster(scheduler, local_cluster) as client:
        if client is not None:
            from engine.distributed import compute_features_distributed

            with console.status("features (one task per bucket)"):
                on_cluster = compute_features_distributed(
                    client,
                    dataset,
                    on_bad_rows=on_bad_rows,  # type: ignore[arg-type]
                    quarantine_dir=quarantine,
                    as_of=_parse_as_of(as_of),
                    session_gap=dt.timedelta(minutes=session_gap),
                )
                write_parquet_atomic(on_cluster.gather(), out)
            result = on_cluster.result
    if client is None:
        with _progress() as progress:
            task = progress.add_task("features (user ranges)", total=None)
            result = compute_features(
                dataset,
                on_bad_rows=on_bad_rows,  # type: ignore[arg-type]
                quarantine_dir=quarantine,
                as_of=_parse_as_of(as_of),
                session_gap=dt.timedelta(minutes=session_gap),
                on_range=lambda done, total: progress.update(task, completed=done, total=total),
                out=out,
            )
    seconds = time.perf_counter() - start
    _report_validation(result.report)
    written = pl.scan_parquet(out)
    users, events = written.select(pl.len(), pl.col("n_events").sum()).collect().row(0)
    n_features = len(written.collect_schema()) - 1
    console.print(
        f"features: {users:,} users x {n_features} features from {events:,} events "
        f"in {seconds:.1f} s -> {out}"
    )


# --- segment ----------------------------------------------------------------------------------
def _parse_k(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"k must be 'auto' or an integer, got {value!r}") from None


def _segments_table(profiles: pl.DataFrame) -> Table:
    table = Table(title="segments")
    for col in ("segment", "name", "users", "share", "buyers", "rule"):
        table.add_column(col)
    for row in profiles.sort("segment").iter_rows(named=True):
        table.add_row(
            str(row["segment"]),
            row["segment_name"],
            f"{row['users']:,}",
            f"{row['user_share']:.1%}",
            f"{row['buyer_share']:.1%}",
            row["name_rule"],
        )
    return table


@main.command()
@click.argument("features_path", metavar="FEATURES", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("segments.parquet"), show_default=True
)
@click.option("--k", "k", default="auto", show_default=True, help="Number of segments or 'auto'.")
@click.option("--seed", type=int, default=0, show_default=True)
@with_cluster_options
@friendly_errors
def segment(
    features_path: Path,
    out: Path,
    k: str,
    seed: int,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Cluster users (features.parquet) into named segments."""
    from engine.featurize import write_parquet_atomic
    from engine.segments import NEEDED_COLUMNS
    from engine.segments import segment as run_segment

    _check_writable(out.parent)
    _require_file_columns(features_path, NEEDED_COLUMNS, "compute them with `ecomscale features`")
    with _cluster(scheduler, local_cluster) as client, console.status("segmenting"):
        if client is None:
            seg = run_segment(pl.read_parquet(features_path), k=_parse_k(k), seed=seed)  # type: ignore[arg-type]
        else:  # each worker reads its own buckets of users from the file
            from engine.distributed import features_file_partitions, segment_distributed

            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            parts = features_file_partitions(client, features_path, 4 * max(workers, 1))
            seg = segment_distributed(client, parts, k=_parse_k(k), seed=seed)  # type: ignore[arg-type]
    write_parquet_atomic(seg.assignments, out)
    write_parquet_atomic(seg.profiles, out.with_name(out.stem + "_profiles.parquet"))
    console.print(_segments_table(seg.profiles))
    console.print(f"segments: {seg.k} segments for {seg.assignments.height:,} users -> {out}")


# --- report -----------------------------------------------------------------------------------
@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--features", "features_path", type=click.Path(path_type=Path, exists=True), required=True
)
@click.option(
    "--segments", "segments_path", type=click.Path(path_type=Path, exists=True), required=True
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_OUT),
    show_default=True,
    help="Folder for report.html and insights/.",
)
@with_data_options
@click.option("--as-of", default=None, help="Use events up to this time (ISO; default: all).")
@friendly_errors
def report(
    data: Path,
    features_path: Path,
    segments_path: Path,
    out: Path,
    fmt: str,
    preset: str | None,
    columns: tuple[str, ...],
    on_bad_rows: str,
    as_of: str | None,
) -> None:
    """Compute the insights and write report.html from earlier features and segments."""
    from engine.featurize import FeatureResult
    from engine.naming import name_segments
    from engine.pipeline import REPORT_FEATURE_COLUMNS, insights_and_report
    from engine.segments import Segmentation, merge_profiles, profile_partial
    from engine.validation import ValidationReport

    _check_writable(out)
    _require_file_columns(
        features_path,
        (*REPORT_FEATURE_COLUMNS, "top_category"),
        "compute them with `ecomscale features`",
    )
    _require_file_columns(
        segments_path, ("user_id", "segment", "segment_name"), "make them with `ecomscale segment`"
    )
    dataset = _load(data, fmt, preset, columns)
    assignments = pl.read_parquet(segments_path)
    # The profiles stream over the features file; only the columns the KPIs and the
    # revenue table need are held in memory (the whole table was 0.6 GB at 2.75M users,
    # and its join with the segments as much again).
    with_segment = pl.scan_parquet(features_path).join(
        assignments.lazy().select("user_id", "segment"), on="user_id"
    )
    profiles = merge_profiles([profile_partial(with_segment)], assignments["segment"].n_unique())
    feats = pl.read_parquet(features_path, columns=list(REPORT_FEATURE_COLUMNS))
    names = dict(assignments.select("segment", "segment_name").unique().iter_rows())
    _, rules = name_segments(profiles)
    profiles = profiles.with_columns(
        pl.col("segment").replace_strict(names, return_dtype=pl.String).alias("segment_name"),
        pl.col("segment").replace_strict(rules, return_dtype=pl.String).alias("name_rule"),
    )
    seg = Segmentation(assignments, profiles, names, rules, len(names), float("nan"), [])
    cutoff = _parse_as_of(as_of) or dataset.events.select(pl.col("ts").max()).collect().item()
    result = FeatureResult(feats, ValidationReport(0, 0), cutoff, [])
    with console.status("insights and report"):
        ari, path = insights_and_report(dataset, result, seg, out, on_bad_rows=on_bad_rows)  # type: ignore[arg-type]
    console.print(f"report: {path}" + (f" (persona ARI {ari:.3f})" if ari is not None else ""))


# --- partition --------------------------------------------------------------------------------
@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--buckets", type=int, required=True, help="Number of buckets (a few per worker).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create.")
@click.option(
    "--quarantine", type=click.Path(path_type=Path), default=Path("quarantine"), show_default=True
)
@click.option("--overwrite", is_flag=True, help="Replace an existing folder at --out.")
@with_data_options
@friendly_errors
def partition(
    data: Path,
    buckets: int,
    out: Path,
    quarantine: Path,
    overwrite: bool,
    fmt: str,
    preset: str | None,
    columns: tuple[str, ...],
    on_bad_rows: str,
) -> None:
    """Lay an event log out in the bucketed layout that --scheduler/--local-cluster read."""
    from engine.partition import partition_dataset, partition_summary

    _check_writable(out.parent)
    if on_bad_rows == "quarantine":
        _check_writable(quarantine)
    dataset = _load(data, fmt, preset, columns)
    start = time.perf_counter()
    with console.status(f"partitioning into {buckets} buckets"):
        manifest, report = partition_dataset(
            dataset,
            out,
            buckets,
            on_bad_rows=on_bad_rows,  # type: ignore[arg-type]
            quarantine_dir=quarantine,
            overwrite=overwrite,
        )
    _report_validation(report)
    rows = partition_summary(out)["len"].to_list()
    console.print(
        f"partition: {manifest['counts']['events']:,} events in {len(rows)} buckets "
        f"({min(rows):,}..{max(rows):,} rows each) in {time.perf_counter() - start:.1f} s "
        f"-> {out}"
    )


# --- run --------------------------------------------------------------------------------------
@main.command()
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path(DEFAULT_OUT), show_default=True
)
@click.option("--k", "k", default="auto", show_default=True, help="Number of segments or 'auto'.")
@click.option("--seed", type=int, default=0, show_default=True, help="Segmentation seed.")
@click.option("--users", type=int, default=None, help="Users in the generated dataset (no DATA).")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
@with_data_options
@with_cluster_options
@friendly_errors
def run(
    data: Path | None,
    out: Path,
    k: str,
    seed: int,
    users: int | None,
    workers: int,
    fmt: str,
    preset: str | None,
    columns: tuple[str, ...],
    on_bad_rows: str,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Run everything: (generate ->) features -> segments -> insights -> report.html.

    With no DATA, the built-in default dataset is generated into OUT/data first (in the
    bucketed layout when a Dask cluster is asked for).
    """
    from engine.pipeline import run_pipeline

    _check_writable(out)
    start = time.perf_counter()
    if data is None:
        from synth import from_preset

        data = out / "data"
        on_cluster = scheduler is not None or local_cluster is not None
        if on_cluster:  # fail before generating, not after
            from engine.distributed import require_dask

            require_dask()
        console.print(f"[bold]no DATA given: generating the default dataset into {data}")
        config = from_preset(
            "default", users=users, buckets=DEFAULT_BUCKETS if on_cluster else None
        )
        _generate(config, data, workers, overwrite=True)
    with _cluster(scheduler, local_cluster) as client:
        dataset = _load(data, fmt, preset, columns)
        with console.status("running") as status:
            result = run_pipeline(
                dataset,
                out,
                k=_parse_k(k),  # type: ignore[arg-type]
                seed=seed,
                on_bad_rows=on_bad_rows,  # type: ignore[arg-type]
                on_stage=lambda stage: status.update(f"[bold]{stage}"),
                client=client,
            )
    profiles = pl.read_parquet(out / "segment_profiles.parquet")
    console.print(_segments_table(profiles))
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    console.print(f"stages: {stages}; total {time.perf_counter() - start:.1f} s")
    from engine.kmeans._kernels import compiled_in_this_process

    if compiled_in_this_process():
        console.print("(segments included compiling the K-Means kernels: first run only)")
    if result.ari is not None:
        console.print(f"agreement with planted personas: ARI = {result.ari:.3f}")
    console.print(f"[bold green]report: {result.report}")


if __name__ == "__main__":
    main()
