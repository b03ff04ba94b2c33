"""The README's performance tables, generated from the committed ``benchmarks/results/*.json``.

Measured figures live in the results files only; the README shows them between markers
(``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``) that this script rewrites, and
``tests/test_readme_figures.py`` fails when the README and the results disagree.

    python -m benchmarks.readme_tables            # rewrite the README's tables
    python -m benchmarks.readme_tables --check    # exit 1 if they are out of date

Results come from: ``ECOMSCALE_BENCH=ci python -m pytest benchmarks
--benchmark-json=benchmarks/results/ci.json`` (ci.json), ``python -m benchmarks.scaling``
(scaling.json, cores.json) and ``python -m benchmarks.dask_scaling`` (dask.json).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
MARKER = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results:\2 -->)", re.DOTALL)


def _m(value: float) -> str:
    return f"{value / 1e6:.1f}M"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _by_name(ci: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {bench["name"]: bench["extra_info"] for bench in ci["benchmarks"]}


def render_ci(results: Path) -> str:
    """The ci benchmark profile: every stage, ours against its peers in the same run."""
    ci = json.loads((results / "ci.json").read_text())
    info = _by_name(ci)
    rows = []
    gen = info["test_generation_vs_write_floor"]
    rows.append(
        [
            f"generate ({gen['events']:,} events)",
            f"{_m(gen['events_per_s'])} events/s, writer peak RSS "
            f"{gen['worker_peak_rss_mb']:.0f} MB",
            f"pyarrow write of the same table: {_m(gen['floor_events_per_s'])}/s "
            f"(ours = {gen['share_of_floor']:.0%} of it)",
        ]
    )
    val = info["test_validation_vs_decode_floor"]
    rows.append(
        [
            "load + validation (all rules)",
            f"{_m(val['rows_per_s'])} rows/s",
            f"Polars decode of the same columns: ours takes {val['times_floor']:.2f}x its time",
        ]
    )
    feat = info["test_features_vs_peers"]
    rss = info.get("test_features_peak_memory", {}).get("peak_rss_mb")
    rows.append(
        [
            f"features ({feat['events']:,} events, {feat['users']:,} users)",
            f"**{_m(feat['events_per_s'])} events/s**"
            + ("" if rss is None else f", peak RSS {rss:.0f} MB"),
            f"DuckDB SQL **{feat['ratio_vs_duckdb']:.1f}x** slower, pandas "
            f"**{feat['ratio_vs_pandas']:.1f}x** slower; ours takes {feat['times_floor']:.1f}x "
            "the decode floor's time",
        ]
    )
    for std in ("easy", "overlapping"):
        km = info[f"test_kmeans_vs_scikit_learn[{std}]"]["summary"][0]
        rows.append(
            [
                f"K-Means, {std} blobs (n = {km['n']:,}, d = 16, k = 8), ours with FAST_SETTINGS",
                f"{km['ours_s']:.3f} s, ARI {km['ari']:.3f}, extra memory "
                f"{km['extra_mem_ratio']:.2f}x the data",
                f"MiniBatchKMeans default **{km['vs_sk_minibatch']:.0f}x** slower, uniform "
                f"{km['vs_sk_minibatch_uniform']:.1f}x; KMeans(lloyd) "
                f"**{km['vs_sk_lloyd']:.1f}x** at inertia ratio "
                f"{km['worst_inertia_vs_lloyd']:.5f}"
                + (
                    ""
                    if "drop_in_vs_sk_minibatch" not in km
                    else f"; ours at scikit-learn's settings (drop-in): MiniBatchKMeans "
                    f"**{km['drop_in_vs_sk_minibatch']:.0f}x** slower, median inertia over "
                    f"{km['parity_seeds']} seeds {km['drop_in_inertia_vs_sk_minibatch']:.4f}x "
                    "scikit-learn's"
                ),
            ]
        )
    if "test_sparse_kmeans_vs_scikit_learn" in info:
        sparse = info["test_sparse_kmeans_vs_scikit_learn"]["summary"]
        rows.append(
            [
                f"K-Means on sparse rows (CSR, n = {sparse['n']:,}, d = {sparse['n_features']:,}, "
                f"{sparse['nnz']:,} non-zeros, k = 8), ours at scikit-learn's settings",
                f"{sparse['ours_s']:.3f} s, ARI {sparse['ari']:.3f} (scikit-learn "
                f"{sparse['sk_ari']:.3f})",
                f"MiniBatchKMeans default **{sparse['vs_sk_minibatch']:.1f}x** slower, uniform "
                f"{sparse['vs_sk_minibatch_uniform']:.1f}x; median inertia "
                f"{sparse['inertia_vs_sk_minibatch']:.4f}x scikit-learn's",
            ]
        )
    if "test_cohorts_vs_duckdb" in info:
        coh = info["test_cohorts_vs_duckdb"]
        rows.append(
            [
                f"cohorts: weekly retention + lifecycle ({coh['events']:,} events)",
                f"{_m(coh['events_per_s'])} events/s (validation included)",
                f"DuckDB SQL of the same definitions **{coh['ratio_vs_duckdb']:.1f}x** slower",
            ]
        )
    if "test_clv_vs_lifetimes" in info:
        clv = info["test_clv_vs_lifetimes"]
        rows.append(
            [
                f"CLV: rfm of {clv['purchases']:,} purchases, BG/NBD fit on "
                f"{clv['customers']:,} customers",
                f"fit {clv['fit_s'] * 1e3:.0f} ms",
                f"lifetimes 0.11.3: rfm **{clv['ratio_rfm_vs_lifetimes']:.1f}x** slower, fit "
                f"**{clv['ratio_fit_vs_lifetimes']:.1f}x** slower (same parameters)",
            ]
        )
    if "test_snapshots_vs_duckdb" in info:
        snap = info["test_snapshots_vs_duckdb"]
        rows.append(
            [
                f"prediction: snapshots of {snap['users']:,} users at {snap['cutoffs']} cutoffs",
                f"stage {snap['stage_s']:.0f} s, held-out AUC {snap['roc_auc']:.3f} (best "
                f"baseline {snap['best_baseline_auc']:.3f})",
                f"DuckDB SQL of the same snapshots **{snap['ratio_vs_duckdb']:.1f}x** slower",
            ]
        )
    if "test_ingest_vs_duckdb_copy" in info:
        ing = info["test_ingest_vs_duckdb_copy"]
        rows.append(
            [
                f"ingest of a time-ordered REES46 CSV ({ing['rows']:,} rows, "
                f"{ing['csv_mb']:.0f} MB)",
                f"{_m(ing['rows_per_s'])} rows/s (validation, products and sort included)",
                f"DuckDB `COPY (... ORDER BY user_id, ts) TO parquet`: ours at "
                f"**{ing['speed_vs_duckdb']:.2f}x** its speed (goal: 1.0)",
            ]
        )
    if "test_run_on_the_csv_vs_the_native_dataset" in info:
        both = info["test_run_on_the_csv_vs_the_native_dataset"]
        rows.append(
            [
                f"`ecomscale run` on that CSV ({both['users']:,} users), ingestion included",
                f"{both['foreign_s']:.1f} s, peak RSS {both['foreign_peak_rss_mb']:.0f} MB",
                f"`ecomscale run` on the native dataset: **{both['time_ratio']:.2f}x** its "
                f"time, **{both['rss_ratio']:.2f}x** its peak RSS (goal: at most 1.5x each)",
            ]
        )
    dist_f = info["test_features_serial_vs_local_cluster"]
    dist_s = info["test_segments_serial_vs_local_cluster"]
    rows.append(
        [
            f"Dask LocalCluster, {dist_f['workers']} workers",
            f"features {dist_f['cluster_vs_serial']:.2f}x, segments (k = {dist_s['k']}) "
            f"{dist_s['cluster_vs_serial']:.2f}x the serial speed",
            "serial path, same run; identical outputs",
        ]
    )
    run = info["test_run_end_to_end"]
    total = sum(run["stage_seconds"].values())
    rows.append(
        [
            f"run, features -> report ({run['events']:,} events)",
            f"{total:.1f} s of stages, persona ARI {run['ari']:.3f}",
            "—",
        ]
    )
    commit = ci.get("commit_info", {})
    dirty = " with uncommitted changes" if commit.get("dirty") else ""
    where = f"commit {commit.get('id', '?')[:7]}{dirty}, {ci.get('datetime', '?')[:10]}"
    head = (
        f"`ci` profile, one run ({where}; {ci['machine_info'].get('cpu', {}).get('count', '?')}"
        " cores):\n\n"
    )
    return head + _table(["stage", "ours", "peer(s) in the same run"], rows)


def _stage_table(
    rows: list[dict[str, Any]], first: dict[str, Callable[[dict[str, Any]], str]]
) -> str:
    """One row per size: the ``first`` columns, then seconds / peak MB of every stage."""
    stages = list(rows[0]["stages"])
    table = [
        [cell(row) for cell in first.values()]
        + [
            f"{row['stages'][s]['seconds']:.1f} / {row['stages'][s]['peak_rss_mb']:.0f}"
            for s in stages
        ]
        for row in rows
    ]
    return _table([*first, *(f"{s} s / peak MB" for s in stages)], table)


def render_scaling(results: Path) -> str:
    """The scaling study: every stage as the CLI, at each size."""
    study = json.loads((results / "scaling.json").read_text())
    first = {"events": lambda r: f"{r['events']:,}", "users": lambda r: f"{r['users']:,}"}
    head = f"{study['machine']}, {study['threads']} threads:\n\n"
    return head + _stage_table(study["rows"], first)


def render_cores(results: Path) -> str:
    """The same stages at one size for each thread count."""
    runs = json.loads((results / "cores.json").read_text())
    counts = sorted(runs, key=int)
    base = runs[counts[0]]["rows"][0]["stages"]
    rows = []
    for stage in base:
        cells = [stage]
        for count in counts:
            seconds = runs[count]["rows"][0]["stages"][stage]["seconds"]
            speedup = base[stage]["seconds"] / seconds
            cells.append(f"{seconds:.1f} s" + ("" if count == counts[0] else f" ({speedup:.2f}x)"))
        rows.append(cells)
    events = runs[counts[0]]["rows"][0]["events"]
    header = [f"stage ({events:,} events)", *(f"{c} thread(s)" for c in counts)]
    return _table(header, rows)


def render_dask(results: Path) -> str:
    """Features and segments on a LocalCluster against the serial path of the same run."""
    study = json.loads((results / "dask.json").read_text())
    serial = study["serial"]
    rows = [
        [
            str(run["workers"]),
            f"{run['features_s']:.1f}",
            f"{run['events_per_s'] / 1e6:.2f}",
            f"{serial['features_s'] / run['features_s']:.2f}x",
            f"{run['segment_s']:.1f}",
            f"{serial['segment_s'] / run['segment_s']:.2f}x",
            "yes" if run["identical"] else "**no**",
        ]
        for run in study["cluster"]
    ]
    header = ["workers", "features s", "M events/s", "vs serial", "segment s", "vs serial"]
    head = (
        f"{study['machine']}; {study['events']:,} events, {study['users']:,} users, "
        f"k = {study['k']}; serial: features {serial['features_s']:.1f} s, segment "
        f"{serial['segment_s']:.1f} s.\n\n"
    )
    return head + _table([*header, "identical"], rows)


def render_segments(results: Path) -> str:
    """Persona recovery against the supervised ceilings (ci.json, and segments-full.json
    when the full profile was run: ``ECOMSCALE_BENCH=full python -m pytest
    benchmarks/test_bench_segments.py --benchmark-json=benchmarks/results/segments-full.json``)."""
    rows = []
    for name in ("ci.json", "segments-full.json"):
        if not (results / name).exists():
            continue
        for bench in json.loads((results / name).read_text())["benchmarks"]:
            if bench["name"].startswith("test_persona_recovery_against_the_ceiling"):
                rows += bench["extra_info"]["rows"]
    seen: set[tuple[float, int]] = set()
    table = []
    for row in sorted(rows, key=lambda r: (r["users"], r["separation"])):
        key = (row["separation"], row["users"])
        if key in seen:
            continue
        seen.add(key)
        table.append(
            [
                f"{row['separation']:g}",
                f"{row['users']:,}",
                f"**{row['ari']:.3f}** (min {row['ari_min']:.3f})",
                f"{row['ceiling_ari']:.3f} / {row['ceiling_all_ari']:.3f}",
                f"**{row['of_ceiling']:.2f}**",
                f"{row['f1_engaged']:.3f} ({row['ceiling_f1_engaged']:.3f})",
                ", ".join(str(k) for k in row["k"]),
                f"{row['seed_pairwise_ari']:.3f}",
                f"{row['segment_s']:.1f}",
            ]
        )
    header = [
        "separation",
        "users",
        "ARI (median of 5 seeds)",
        "ceiling ARI taste-free / all",
        "of taste-free ceiling",
        "F1 engaged (ceiling)",
        "k",
        "ARI between seeds",
        "segment s",
    ]
    return _table(header, table)


def render_foreign(results: Path) -> str:
    """The foreign path's scaling study (``python -m benchmarks.foreign_scaling``)."""
    study = json.loads((results / "foreign.json").read_text())
    first = {
        "CSV rows": lambda r: f"{r['rows']:,}",
        "CSV GB": lambda r: f"{r['csv_bytes'] / 1e9:.2f}",
    }
    text = f"{study['machine']}:\n\n" + _stage_table(study["rows"], first)
    capped = study.get("memory_capped")
    if capped:
        text += (
            f"\n`ingest` of the {capped['rows']:,}-row CSV again under a {capped['cap_gb']:g} GiB "
            f"memory cap ({capped['cap']}): {'ok' if capped['ok'] else '**failed**'}, "
            f"{capped['seconds']:.1f} s, peak RSS {capped['peak_rss_mb']:.0f} MB.\n"
        )
    return text


def render_generator(results: Path) -> str:
    """Realism of the default dataset (``python -m benchmarks.realism``) and the speed against
    the previous generator (``python -m benchmarks.generator_versions``)."""
    r = json.loads((results / "realism.json").read_text())
    pct = lambda key: f"{r[key]:.1%}"  # noqa: E731
    rows = [
        ["events per user (30 days)", f"{r['events_per_user']:.1f}", "REES46 Oct 2019: ~14"],
        [
            "views / carts / removes / purchases",
            " / ".join(pct(k) for k in ("view", "add_to_cart", "remove_from_cart", "purchase")),
            "REES46 ~96 / 2.4 / - / 1.6; RetailRocket 96.7 / 2.5 / - / 0.8",
        ],
        [
            "events per session, median / mean",
            f"{r['session_events_median']:g} / {r['session_events_mean']:.1f}",
            "GA4 sample: 2 / 4-5",
        ],
        ["sessions with a purchase", pct("buying_sessions"), "GA4 sample: 1.5-3%"],
        [
            "users who buy / buyers who buy again",
            f"{pct('buyers')} / {pct('repeat_buyers')}",
            "REES46: ~7% buy",
        ],
        [
            "users first seen in the window (new)",
            pct("new_users"),
            "new_users = 0.5 of all but the lapsed (15%)",
        ],
        [
            "users inactive by the window's end (dropout or lapse)",
            pct("inactive_at_end"),
            "truth/purchase_process",
        ],
        [
            "consecutive views in one collection (chance)",
            f"{pct('same_collection_views')} ({r['same_collection_chance']:.2%})",
            "truth/collections",
        ],
    ]
    text = f"Default config, {r['users']:,} users:\n\n" + _table(
        ["measure", "ours", "public reference"], rows
    )
    versions = results / "generator.json"
    if versions.exists():
        study = json.loads(versions.read_text())
        vrows = [
            [
                row["config"],
                f"{row['previous']['events_per_s'] / 1e6:.2f} M/s ({row['previous']['events'] / row['users']:.1f} per user)",
                f"{row['current']['events_per_s'] / 1e6:.2f} M/s ({row['current']['events'] / row['users']:.1f} per user)",
                f"{row['ratio']:.2f}",
                f"{row['current']['rss_mb']:.0f} MB",
            ]
            for row in study["rows"]
        ]
        text += (
            f"\nOne worker, {study['rows'][0]['users']:,} users, against version 2 "
            f"(`{study['previous_rev']}`) in the same run:\n\n"
            + _table(["config", "version 2", "version 3", "ratio", "worker peak RSS"], vrows)
        )
        year = study.get("year")
        if year:
            text += (
                f"\nVersion 3 over {year['days']} days ({year['users']:,} users, "
                f"{year['events']:,} events): {year['events_per_s'] / 1e6:.2f} M events/s, "
                f"{year['vs_30_days']:.2f}x its 30-day speed per event, worker peak RSS "
                f"{year['rss_mb']:.0f} MB.\n"
            )
    return text


def render_clv(results: Path) -> str:
    """CLV at scale against lifetimes (``python -m benchmarks.clv_study``)."""
    rows = []
    for row in json.loads((results / "clv.json").read_text())["rows"]:
        if "lifetimes_s" in row:
            peer = f"{row['lifetimes_s']:.2f} s: ours **{row['ratio']:.0f}x** faster"
        else:
            peer = row.get("lifetimes_error", "— (not run)")
        size = f"{row['purchases']:,} purchases -> " if "purchases" in row else ""
        rows.append(
            [row["case"], f"{size}{row['customers']:,} customers", f"{row['ours_s']:.3f} s", peer]
        )
    return _table(["case", "size", "ours", "lifetimes 0.11.3, same data"], rows)


def render_predict_quality(results: Path) -> str:
    """Prediction quality against baselines and oracles (``python -m
    benchmarks.predict_quality``)."""
    rows = []
    for r in json.loads((results / "predict.json").read_text())["quality"]:
        best = r["baselines"][r["best_baseline"]]
        model = r["model"]
        rows.append(
            [
                f"{r['generated_users'] // 1000}k, seed {r['seed']}, sep. {r['separation']:g}",
                f"{r['target']}, {r['horizon_days']} d",
                f"{model['base_rate']:.1%}",
                f"**{model['roc_auc']:.3f}**",
                f"{best['roc_auc']:.3f} ({r['best_baseline']})",
                f"{r['oracle_auc']:.3f} ({r['auc_over_oracle']:.2f})",
                f"{r['persona_oracle_auc']:.3f} ({model['roc_auc'] / r['persona_oracle_auc']:.2f})",
                f"{r['brier_over_base']:.2f}",
                f"{model['lift_top_decile']:.1f}",
            ]
        )
    header = [
        "data (users, seed, separation)",
        "target, H",
        "base rate",
        "ours",
        "best baseline",
        "oracle (ours ÷ oracle)",
        "persona oracle (ours ÷ it)",
        "Brier / base",
        "lift top 10%",
    ]
    return _table(header, rows)


def render_predict_scale(results: Path) -> str:
    """Snapshots against DuckDB, and the predict command at scale (``python -m
    benchmarks.predict_scale``)."""
    scale = json.loads((results / "predict.json").read_text())["scale"]
    snap = scale["snapshots"]
    text = (
        f"Snapshots of {snap['users']:,} users ({snap['events']:,} events) at {snap['cutoffs']} "
        f"cutoffs, {snap['features']} features, {snap['snapshot_rows']:,} rows: ours "
        f"{snap['ours_s']:.1f} s, DuckDB {snap['duckdb_s']:.1f} s: ours "
        f"**{snap['ratio_vs_duckdb']:.1f}x** faster.\n\n"
    )
    rows = []
    for stage in scale["stages"]:
        t = stage["timings_s"]
        rows.append(
            [
                stage["target"],
                f"{stage['command_s']:.0f} s",
                f"{t['snapshots']:.1f} s",
                f"{t['training']:.1f} s ({stage['training_rows']:,} rows)",
                f"{t['scoring']:.1f} s ({stage['scored_users']:,} users)",
                f"{t['importance']:.1f} s",
                f"{stage['peak_rss_mb']:,.0f} MB",
                f"{stage['roc_auc']:.3f} vs {stage['best_baseline_auc']:.3f}",
            ]
        )
    header = [
        "`ecomscale predict`",
        "whole command",
        "snapshots",
        "training",
        "scoring",
        "importance",
        "peak RSS",
        "ROC AUC vs best baseline",
    ]
    return text + _table(header, rows)


RENDERERS: dict[str, Callable[[Path], str]] = {
    "clv": render_clv,
    "predict_quality": render_predict_quality,
    "predict_scale": render_predict_scale,
    "generator": render_generator,
    "foreign": render_foreign,
    "segments": render_segments,
    "ci": render_ci,
    "scaling": render_scaling,
    "cores": render_cores,
    "dask": render_dask,
}


def rendered_readme(text: str, results: Path = RESULTS) -> str:
    """``text`` with every results block replaced by the table rendered from ``results``."""

    def block(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise KeyError(f"README block {name!r}: no renderer (known: {sorted(RENDERERS)})")
        return match.group(1) + RENDERERS[name](results) + match.group(4)

    return MARKER.sub(block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args()
    current = README.read_text()
    fresh = rendered_readme(current)
    if args.check:
        sys.exit(0 if fresh == current else 1)
    README.write_text(fresh)


if __name__ == "__main__":
    main()
