"""ecomscale predict: conversion or churn scores per user from point-in-time snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
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
from engine.io.atomic import check_writable
from engine.validation import parse_policy

TARGET_NAMES = ("conversion", "churn")  # engine.predict.TARGETS, without importing sklearn


def _metrics_table(evaluation: dict[str, Any], cutoff: str) -> Table:
    table = Table(title=f"held out: {evaluation['users']:,} users at the cutoff {cutoff[:16]}")
    for column in ("scorer", "ROC AUC", "PR AUC", "Brier", "lift top 10%"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    rows = {"model": evaluation["model"], **evaluation["baselines"]}
    for name, found in rows.items():
        brier = "-" if found["brier"] is None else f"{found['brier']:.4f}"
        table.add_row(
            name,
            f"{found['roc_auc']:.3f}",
            f"{found['pr_auc']:.3f}",
            brier,
            f"{found['lift_top_decile']:.2f}",
        )
    return table


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--target",
    type=click.Choice(TARGET_NAMES),
    default="conversion",
    show_default=True,
    help="conversion: a purchase in the H days after the cutoff; churn: a user active in the "
    "H days before it with no event in the H days after.",
)
@click.option(
    "--horizon-days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="H, the label window's length in days.",
)
@click.option(
    "--cutoff",
    default=None,
    help="C (ISO; default: the last event minus H). Features use events strictly before C; "
    "labels the events in [C, C + H).",
)
@click.option(
    "--training-cutoffs",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Train on snapshots at C - H, C - 2H, ... (as many as the log allows).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="For the model and the importance."
)
@click.option(
    "--segments",
    "segments_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="segments.parquet, for the score distribution per segment.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_OUT) / "predict",
    show_default=True,
    help="Folder for scores.parquet and metrics.json.",
)
@with_data_options
@friendly_errors
def predict(
    data: Path,
    target: str,
    horizon_days: int,
    cutoff: str | None,
    training_cutoffs: int,
    seed: int,
    segments_path: Path | None,
    out: Path,
    data_options: DataOptions,
    on_bad_rows: str,
) -> None:
    """Conversion or churn prediction: a score per user, trained on earlier cutoffs and
    checked on the period after the cutoff against three baselines."""
    from engine.commands import predict_from_data  # scikit-learn: only when the command runs
    from engine.predict import PredictConfig

    config = PredictConfig(
        target=target,  # type: ignore[arg-type]
        horizon_days=horizon_days,
        cutoff=parse_as_of(cutoff),
        training_cutoffs=training_cutoffs,
        seed=seed,
    )
    policy = parse_policy(on_bad_rows)
    source = data_source(data, data_options)
    check_writable(out)
    dataset = open_dataset(source, out.parent, policy)
    with console.status(f"predict: snapshots and a {target} model"):
        result = predict_from_data(dataset, config, out, policy, segments_path)
    found = result.metrics
    trained = len(found["training_cutoffs"])
    console.print(
        f"trained on {found['training_rows']:,} rows from {trained} earlier cutoffs "
        f"(base rate {found['training_base_rate']:.2%})"
    )
    if found["evaluation"]:
        console.print(_metrics_table(found["evaluation"], found["cutoff"]))
    else:
        console.print(
            f"[yellow]note:[/] no evaluation: the log does not reach {horizon_days} days past "
            "the cutoff (scores only)"
        )
    top = ", ".join(row["feature"] for row in found["importance"][:5])
    console.print(f"top features: {top}")
    console.print(f"predict: {found['scored_users']:,} users scored -> {out}")
