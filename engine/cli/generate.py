"""ecomscale generate: a synthetic dataset."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from engine.cli.common import console, friendly_errors, progress


def generate_with_progress(config: Any, out: Path, workers: int, overwrite: bool) -> None:
    """Run ``synth.generate_dataset`` with a progress bar, then print what was written."""
    from synth import generate_dataset

    start = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("generating parts", total=None)

        def on_part(result: Any, total: int) -> None:
            bar.update(task, total=total, advance=1)

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


@click.command()
@click.option("--users", type=int, default=None, help="Number of users (preset default: 100,000).")
@click.option("--days", type=int, default=None, help="Days in the event window (default 30).")
@click.option("--seed", type=int, default=None, help="Root seed (default 42).")
@click.option("--products", type=int, default=None, help="Catalogue size (default 20,000).")
@click.option(
    "--separation",
    type=float,
    default=None,
    help="0..1: how much each persona's category taste leans to its own categories (0.3).",
)
@click.option(
    "--new-users",
    type=float,
    default=None,
    help="Share of users whose first visit falls inside the window (default 0.5).",
)
@click.option(
    "--experiment",
    "experiments",
    multiple=True,
    metavar="NAME:LIFT[:SPLIT[:START_DAY]]",
    help="Plant a randomised experiment (repeatable), e.g. checkout:0.1 or aa:0:0.5:7. "
    "Truth: truth/experiments.parquet and the manifest.",
)
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
    new_users: float | None,
    experiments: tuple[str, ...],
    dirty: float | None,
    preset: str,
    out: Path,
    workers: int,
    buckets: int | None,
    overwrite: bool,
) -> None:
    """Generate a synthetic dataset: users, products, events and planted truths (personas,
    the latent purchase process, product collections, experiments) under truth/."""
    from synth import from_preset
    from synth.config import ExperimentSpec

    config = from_preset(
        preset,
        users=users,
        days=days,
        seed=seed,
        products=products,
        separation=separation,
        new_users=new_users,
        experiments=tuple(ExperimentSpec.parse(text) for text in experiments) or None,
        dirty=dirty,
        buckets=buckets,
    )
    generate_with_progress(config, out, workers, overwrite)
