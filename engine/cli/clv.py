"""ecomscale clv: BG/NBD and Gamma-Gamma customer lifetime value from an event log."""

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


def _fit_table(fit: dict[str, Any]) -> Table:
    table = Table(title=f"fits on {fit['customers']:,} customers up to {fit['as_of'][:10]}")
    table.add_column("model")
    table.add_column("parameters (standard error)")
    table.add_column("log-likelihood", justify="right")
    for name, key in (("BG/NBD", "bgnbd"), ("Gamma-Gamma", "gamma_gamma")):
        model = fit[key]
        params = ", ".join(
            f"{p} {v:.4g} ({model['standard_errors'][p]:.2g})" for p, v in model["params"].items()
        )
        table.add_row(name, params, f"{model['log_likelihood']:,.2f}")
    return table


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_OUT) / "clv",
    show_default=True,
    help="Folder for clv.parquet and fit.json.",
)
@click.option(
    "--as-of",
    default=None,
    help="End of the calibration window (ISO; default: last event). Later purchases are "
    "the holdout that fit.json scores the predictions on.",
)
@click.option("--horizon-days", type=float, default=90.0, show_default=True)
@click.option("--discount-rate", type=float, default=0.0, show_default=True, help="Per 30 days.")
@click.option(
    "--penalizer",
    type=float,
    default=0.0,
    show_default=True,
    help="L2 penalty on the parameters (lifetimes' penalizer_coef); 0 is plain maximum likelihood.",
)
@with_data_options
@friendly_errors
def clv(
    data: Path,
    out: Path,
    as_of: str | None,
    horizon_days: float,
    discount_rate: float,
    penalizer: float,
    data_options: DataOptions,
    on_bad_rows: str,
) -> None:
    """Customer lifetime value: who is still alive, how many purchases and how much spend to
    expect (BG/NBD and Gamma-Gamma on lifetimes' daily rfm summary)."""
    from engine.clv import ClvConfig  # numba: only when the command runs
    from engine.commands import clv_from_data

    config = ClvConfig(parse_as_of(as_of), horizon_days, discount_rate, penalizer)
    policy = parse_policy(on_bad_rows)
    source = data_source(data, data_options)
    check_writable(out)
    dataset = open_dataset(source, out.parent, policy)
    with console.status("clv: fitting BG/NBD and Gamma-Gamma"):
        result = clv_from_data(dataset, config, out, policy)
    console.print(_fit_table(result.fit))
    for warning in result.fit["warnings"]:
        console.print(f"[yellow]note:[/] {warning}")
    holdout = result.fit["holdout"]
    if holdout:
        console.print(
            f"holdout: {holdout['days']:g} days after as_of, {holdout['predicted_total']:,.0f} "
            f"purchases predicted, {holdout['actual_total']:,.0f} made; MAE per customer "
            f"{holdout['mae']:.3f}"
        )
    total = result.customers["clv"].sum()
    customers = result.customers.height
    console.print(f"clv: {customers:,} customers, {horizon_days:g}-day value {total:,.0f} -> {out}")
