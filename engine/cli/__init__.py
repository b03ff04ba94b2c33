"""The ecomscale command line: one small module per command. Each parses its options, builds
the stage's typed configuration, calls the stage and renders what it returned; expected
errors print one line ("error: ...") and exit with status 2, no traceback. Nothing in engine
imports this package."""

from __future__ import annotations

import click

from engine.cli.clv import clv
from engine.cli.cohorts import cohorts
from engine.cli.features import features
from engine.cli.generate import generate
from engine.cli.ingest import ingest
from engine.cli.partition import partition
from engine.cli.predict import predict
from engine.cli.report import report
from engine.cli.run import run
from engine.cli.segment import segment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecomscale")
def main() -> None:
    """ecomscale: e-commerce behavioural analytics at scale.

    \b
    ecomscale run                       # generate the default dataset, run everything
    ecomscale generate --users 1000000 --out data/
    ecomscale ingest 2019-Oct.csv --preset rees46 --out data/   # your own log
    ecomscale features data/ --out features.parquet
    ecomscale segment features.parquet --out segments.parquet
    ecomscale report data/ --features features.parquet --segments segments.parquet
    ecomscale cohorts data/ --period week --out cohorts/
    ecomscale clv data/ --as-of 2026-10-21 --horizon-days 90 --out clv/
    ecomscale predict data/ --target churn --horizon-days 14 --out predict/
    ecomscale run --local-cluster 2        # the same on a local Dask cluster
    ecomscale partition logs/ --buckets 64 --out bucketed/   # layout for Dask
    """


for command in (generate, ingest, features, segment, report, cohorts, clv, predict, partition, run):
    main.add_command(command)

__all__ = ["main"]
