"""The generator's realism and planted truths, measured on the default dataset.

    python -m benchmarks.realism [--users 100000]

Writes benchmarks/results/realism.json (the README's generator table). The statistical
tests in tests/test_realism.py and tests/test_synth_truths.py hold the bounds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import polars as pl

from synth import SynthConfig, generate_dataset

RESULTS = Path(__file__).parent / "results" / "realism.json"
GAP = pl.duration(minutes=30)


def measure(root: Path) -> dict[str, float]:
    events = (
        pl.read_parquet(root / "events")
        .with_columns(
            new=((pl.col("user_id").diff() != 0) | (pl.col("ts").diff() > GAP)).fill_null(True)
        )
        .with_columns(session=pl.col("new").cum_sum())
    )
    mix = dict(events["event_type"].cast(pl.String).value_counts(normalize=True).iter_rows())
    sessions = events.group_by("session").agg(
        n=pl.len(),
        buy=(pl.col("event_type") == "purchase").any(),
        user_id=pl.col("user_id").first(),
    )
    users = sessions.group_by("user_id").agg(buys=pl.col("buy").sum())
    buyers = users.filter(pl.col("buys") > 0)
    process = pl.read_parquet(root / "truth" / "purchase_process.parquet")
    collections = pl.read_parquet(root / "truth" / "collections.parquet")
    views = (
        events.filter(pl.col("event_type") == "view")
        .join(collections, on="product_id")
        .with_columns(prev=pl.col("collection_id").shift().over("session"))
        .drop_nulls("prev")
    )
    share = views["collection_id"].value_counts(normalize=True)["proportion"]
    same = float((views["collection_id"] == views["prev"]).mean())  # type: ignore[arg-type]
    return {
        "events_per_user": events.height / process.height,
        "view": mix["view"],
        "add_to_cart": mix["add_to_cart"],
        "remove_from_cart": mix["remove_from_cart"],
        "purchase": mix["purchase"],
        "session_events_median": float(sessions["n"].median()),  # type: ignore[arg-type]
        "session_events_mean": float(sessions["n"].mean()),  # type: ignore[arg-type]
        "buying_sessions": float(sessions["buy"].mean()),  # type: ignore[arg-type]
        "buyers": buyers.height / process.height,
        "repeat_buyers": float((buyers["buys"] >= 2).mean()),  # type: ignore[arg-type]
        "new_users": float(process["arrived_ts"].is_not_null().mean()),  # type: ignore[arg-type]
        "inactive_at_end": float(process["inactive_ts"].is_not_null().mean()),  # type: ignore[arg-type]
        "same_collection_views": same,
        "same_collection_chance": float((share**2).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(SynthConfig(users=args.users), Path(tmp) / "d", workers=2)
        row = {"users": args.users, **measure(Path(tmp) / "d")}
    RESULTS.write_text(json.dumps(row, indent=2) + "\n")
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
