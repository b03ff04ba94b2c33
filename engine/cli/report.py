"""ecomscale report: the insights and report.html from earlier features and segments."""

from __future__ import annotations

from pathlib import Path

import click

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
from engine.io.atomic import check_writable
from engine.validation import parse_policy


@click.command()
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
    data_options: DataOptions,
    on_bad_rows: str,
    as_of: str | None,
) -> None:
    """Compute the insights and write report.html from earlier features and segments."""
    from engine.commands import report_from_files
    from engine.insights import InsightsConfig
    from engine.pipeline import RunConfig

    source = data_source(data, data_options)
    policy = parse_policy(on_bad_rows)
    config = RunConfig(insights=InsightsConfig(policy), cohorts=CohortsConfig(on_bad_rows=policy))
    check_writable(out)
    dataset = open_dataset(source, out, policy)
    with console.status("insights and report"):
        found, path = report_from_files(
            dataset, features_path, segments_path, out, config, parse_as_of(as_of)
        )
    ari = found.ari
    console.print(f"report: {path}" + (f" (persona ARI {ari:.3f})" if ari is not None else ""))
