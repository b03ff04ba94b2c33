"""What every command shares: one-line errors, progress, the data and cluster options."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.exceptions import ConfigError, EcomscaleError
from engine.io.dataset import DataSource
from engine.validation import POLICIES, ValidationReport

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_OUT = "ecomscale-out"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def friendly_errors(func: Callable[..., None]) -> Callable[..., None]:
    """Turn expected errors (and unreadable data found mid-query) into one line + exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
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

    return wrapper


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def parse_as_of(value: str | None) -> dt.datetime | None:
    """An ISO date/time from the command line; naive means UTC."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date/time (e.g. 2026-10-31T00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):
        func = option(func)
    return func


@dataclass(frozen=True)
class DataOptions:
    """--format, --preset, --column, --item-properties, --category-tree (how to read DATA)."""

    fmt: str
    preset: str | None
    columns: tuple[str, ...]
    item_properties: tuple[Path, ...]
    category_tree: Path | None


_DATA_OPTION_NAMES = ("fmt", "preset", "columns", "item_properties", "category_tree")


def with_data_options(func: F) -> F:
    """The DataOptions (passed on as ``data_options``) and --on-bad-rows."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = DataOptions(*(kwargs.pop(name) for name in _DATA_OPTION_NAMES))
        return func(*args, data_options=options, **kwargs)

    return _apply(
        [
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["auto", "parquet", "csv"]),
                default="auto",
                show_default=True,
                help="File format of a foreign log (auto: by extension; .csv.gz is csv).",
            ),
            click.option(
                "--preset", default=None, help="Foreign layout preset: rees46 or retailrocket."
            ),
            click.option(
                "--column",
                "columns",
                multiple=True,
                help="CONTRACT=SOURCE column mapping, e.g. user_id=visitor; repeatable.",
            ),
            click.option(
                "--item-properties",
                multiple=True,
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                help="RetailRocket item_properties*.csv: prices and categories; repeatable.",
            ),
            click.option(
                "--category-tree",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                help="RetailRocket category_tree.csv: categories rolled up to their roots.",
            ),
            click.option(
                "--on-bad-rows",
                type=click.Choice(POLICIES),
                default="error",
                show_default=True,
                help="What to do with rows that break validation rules.",
            ),
        ],
        cast(F, wrapper),
    )


def data_source(data: Path | tuple[Path, ...], options: DataOptions) -> DataSource:
    """The DataSource of DATA and the data options (a bad --column is a usage error)."""
    paths = (data,) if isinstance(data, Path) else data
    try:
        return DataSource.parse(
            paths[0],
            options.fmt,
            options.preset,
            options.columns,
            options.item_properties,
            options.category_tree,
            paths[1:],
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def with_space_option(func: F) -> F:
    """--space: what decides the segments (engine.segments.prepare)."""
    return click.option(
        "--space",
        type=click.Choice(["behaviour", "behaviour+category"]),
        default="behaviour",
        show_default=True,
        help="What decides the segments: behaviour only, or behaviour plus category taste.",
    )(func)


def with_cluster_options(func: F) -> F:
    """--scheduler and --local-cluster."""
    return _apply(
        [
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
        ],
        func,
    )


@contextlib.contextmanager
def cluster(scheduler: str | None, local_cluster: int | None) -> Iterator[Any]:
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


def print_validation(report: ValidationReport) -> None:
    if report.clean:
        console.print(f"validation: all {report.rows_in:,} rows passed")
        return
    lines = ", ".join(f"{rule}={n:,}" for rule, n in report.counts.items())
    console.print(f"validation: {report.rows_in:,} rows in, {report.rows_out:,} kept; {lines}")
    if report.resorted:
        console.print("validation: input was not sorted by (user_id, ts); it was sorted")
    if report.quarantine_path:
        console.print(f"validation: rejected rows written to {report.quarantine_path}")


def segments_table(profiles: pl.DataFrame) -> Table:
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
