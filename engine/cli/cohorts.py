"""ecomscale cohorts: retention by cohort and lifecycle, from an event log."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl
from rich.table import Table

from engine.cli.common import (
    DEFAULT_OUT,
    DataOptions,
    console,
    data_source,
    friendly_errors,
    parse_as_of,
    with_data_options,
)
from engine.cli.ingest import open_dataset
from engine.cohorts import CohortsConfig
from engine.cohorts.retention import CRITERIA, MODES, PERIODS
from engine.io.atomic import check_writable
from engine.schema import EVENT_TYPES

KINDS = ("any", *EVENT_TYPES)


def _retention_table(retention: pl.DataFrame, periods: int = 8) -> Table:
    table = Table(title="retention (share of each cohort back in period n)")
    table.add_column("cohort")
    table.add_column("users", justify="right")
    for n in range(periods):
        table.add_column(str(n), justify="right")
    for cohort, rows in retention.sort("cohort", "period").group_by("cohort", maintain_order=True):
        cells = [
            f"{rate:.0%}" + ("" if complete else "*")
            for rate, complete in rows.select("rate", "complete").head(periods).iter_rows()
        ]
        table.add_row(str(cohort[0]), f"{rows['cohort_users'][0]:,}", *cells)
    return table


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_OUT) / "cohorts",
    show_default=True,
    help="Folder for retention.parquet, revenue_retention.parquet, lifecycle.parquet.",
)
@click.option("--period", type=click.Choice(PERIODS), default="week", show_default=True)
@click.option(
    "--start-event",
    type=click.Choice(KINDS),
    default="any",
    show_default=True,
    help="The event whose first occurrence makes a user's cohort.",
)
@click.option(
    "--return-event",
    type=click.Choice(KINDS),
    default="any",
    show_default=True,
    help="The event that counts as coming back.",
)
@click.option(
    "--criterion",
    type=click.Choice(CRITERIA),
    default="on",
    show_default=True,
    help="Retained in period n: returned in n ('on') or in n or later ('on_or_after').",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="first_time",
    show_default=True,
    help="One cohort per user, or a cohort for every period with a start event.",
)
@click.option(
    "--segments",
    "segments_path",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="segments.parquet: adds retention_by_segment.parquet.",
)
@click.option("--as-of", default=None, help="End of the window (ISO; default: last event).")
@with_data_options
@friendly_errors
def cohorts(
    data: Path,
    out: Path,
    period: str,
    start_event: str,
    return_event: str,
    criterion: str,
    mode: str,
    segments_path: Path | None,
    as_of: str | None,
    data_options: DataOptions,
    on_bad_rows: str,
) -> None:
    """Retention by cohort (first-time or recurring) and lifecycle per period.

    Periods are UTC days, weeks starting on Monday, or calendar months; a * marks a period
    that is not over yet.
    """
    from engine.commands import cohorts_from_data

    source = data_source(data, data_options)
    config = CohortsConfig.parse(period, start_event, return_event, criterion, mode, on_bad_rows)
    check_writable(out)
    dataset = open_dataset(source, out.parent, config.on_bad_rows)
    with console.status("cohorts"):
        tables = cohorts_from_data(dataset, config, out, segments_path, parse_as_of(as_of))
    console.print(_retention_table(tables.retention))
    cohorts_n = tables.retention["cohort"].n_unique()
    console.print(f"cohorts: {cohorts_n} {period}ly cohorts, lifecycle per {period} -> {out}")
