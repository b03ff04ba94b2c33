"""Scaling study of the foreign path: a time-ordered REES46-layout CSV of each size, ingested
and then run stage by stage, each stage as the real CLI in its own process (time and peak
RSS), and ``ingest`` of the largest CSV again inside a memory cap.

    python -m benchmarks.foreign_scaling --events 1M,10M,50M,100M --cap-gb 2 --out benchmarks/results

Writes foreign.json to --out (the README's foreign table is generated from it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.scaling import EVENTS_PER_USER, parse_size, run_stage


def _stages(csv: Path, folder: Path) -> dict[str, list[str]]:
    data, feats, segs = folder / "data", folder / "features.parquet", folder / "segments.parquet"
    return {
        "ingest": ["ingest", str(csv), "--preset", "rees46", "--out", str(data)],
        "features": ["features", str(data), "--out", str(feats)],
        "segment": ["segment", str(feats), "--out", str(segs)],
        "cohorts": ["cohorts", str(data), "--out", str(folder / "c")],
        "report": [
            "report", str(data), "--features", str(feats), "--segments", str(segs),
            "--out", str(folder / "r"),
        ],
    }  # fmt: skip


def study(sizes: list[int], work: Path, cap_gb: float | None) -> dict[str, Any]:
    env = dict(os.environ)
    rows = []
    for events in sizes:
        folder = work / f"n{events}"
        shutil.rmtree(folder, ignore_errors=True)
        native = folder / "native"
        users = max(1000, round(events / EVENTS_PER_USER))
        generated = run_stage(["generate", "--users", str(users), "--out", str(native)], env)
        assert generated["ok"], generated["tail"]
        # in a child process: a fork inherits the parent's peak RSS, so the parent stays small
        csv = folder / "log.csv"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.foreign_logs", str(native), str(csv)], check=True
        )
        shutil.rmtree(native)  # only the CSV goes on
        measured = {}
        for name, args in _stages(csv, folder).items():
            measured[name] = run_stage(args, env)
            assert measured[name]["ok"], measured[name]["tail"]
            print(
                f"{events:>12,} rows  {name:<9} {measured[name]['seconds']:8.1f} s  "
                f"{measured[name]['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
        manifest = json.loads((folder / "data" / "manifest.json").read_text())
        rows.append(
            {
                "rows": manifest["counts"]["events_in"],
                "csv_bytes": csv.stat().st_size,
                "stages": measured,
            }
        )
        if events != sizes[-1]:
            shutil.rmtree(folder)
    capped = None
    if cap_gb:
        folder = work / f"n{sizes[-1]}"
        args = [
            "ingest",
            str(folder / "log.csv"),
            "--preset",
            "rees46",
            "--out",
            str(folder / "capped"),
        ]
        capped = run_stage(args, env, cap_bytes=int(cap_gb * 2**30))
        capped.update(cap_gb=cap_gb, rows=rows[-1]["rows"], csv_bytes=rows[-1]["csv_bytes"])
        print(f"ingest under a {cap_gb} GiB cap: ok={capped['ok']} {capped['seconds']:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rows": rows,
        "memory_capped": capped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1M,10M")
    parser.add_argument("--cap-gb", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--work", type=Path, default=Path("foreign-scaling-work"))
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.events.split(",")]
    result = study(sizes, args.work, args.cap_gb)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "foreign.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
