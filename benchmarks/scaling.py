"""Scaling study: the pipeline at several sizes, time and peak RSS per stage, and a fit.

    python -m benchmarks.scaling --events 1M,10M,50M,100M --out benchmarks/results

Each stage runs as the real CLI in its own process (so peak RSS is that stage's alone):
generate -> features -> segment -> report. ``--memory-cap-gb`` adds a features run under a
memory limit at the largest size (a memory cgroup where one can be made, else RLIMIT_AS):
the larger-than-memory point. ``--threads`` pins POLARS_MAX_THREADS / NUMBA_NUM_THREADS /
generator workers; ``--cores 1,2,4,8,16`` times every stage at one size for each thread
count (cores.md): the study across cores.
Writes scaling.md (table + fit), scaling.json and scaling.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EVENTS_PER_USER = 18.2  # the default generator's mean, measured
# Peak RSS: the stage's own VmHWM (ru_maxrss would carry the forking parent's size over
# exec), or its worker processes' ru_maxrss when larger.
RUNNER = (
    "import resource, sys, time\n"
    "from engine.cli import main\n"
    "from synth.dataset import peak_rss_mb\n"
    "start = time.perf_counter()\n"
    "try:\n"
    "    main(sys.argv[1:], standalone_mode=False)\n"
    "finally:\n"
    "    peak = max(peak_rss_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    "    print(f'@@ {time.perf_counter() - start:.3f} {peak:.1f}', file=sys.stderr)\n"
)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KMG")) * scale)


def memory_cgroup(cap_bytes: int) -> Path | None:
    """A child memory cgroup (v1) of our own, limited to ``cap_bytes`` of RSS + page cache."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        parts = line.split(":")
        if parts[1] == "memory":
            group = (
                Path("/sys/fs/cgroup/memory")
                / parts[2].lstrip("/")
                / f"ecomscale-cap-{os.getpid()}"
            )
            try:
                group.mkdir(exist_ok=True)
                (group / "memory.limit_in_bytes").write_text(str(cap_bytes))
                return group
            except OSError:
                return None
    return None


def run_stage(args: list[str], env: dict[str, str], cap_bytes: int | None = None) -> dict[str, Any]:
    # A real cap on resident memory where a memory cgroup can be made; else an address-space
    # limit (much stricter: Polars reserves far more virtual memory than it touches).
    group = memory_cgroup(cap_bytes) if cap_bytes else None

    def limit() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))
        elif cap_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limit if cap_bytes else None,
    )
    if group is not None:
        group.rmdir()
    marker = [line for line in proc.stderr.splitlines() if line.startswith("@@ ")]
    seconds, rss = (float(x) for x in marker[-1].split()[1:]) if marker else (float("nan"),) * 2
    ok = proc.returncode == 0 and "error:" not in proc.stderr
    how = "cgroup memory.limit_in_bytes" if group is not None else "RLIMIT_AS"
    return {
        "seconds": seconds,
        "peak_rss_mb": rss,
        "ok": ok,
        "tail": proc.stderr[-400:],
        "cap": how,
    }


def study(
    sizes: list[int], out: Path, work: Path, threads: int | None, cap_gb: float | None
) -> dict[str, Any]:
    env = dict(os.environ)
    workers = threads or os.cpu_count() or 1
    if threads:
        env.update(POLARS_MAX_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    rows = []
    for events in sizes:
        users = max(1000, round(events / EVENTS_PER_USER))
        folder = work / f"n{events}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        data, feats, segs = (
            folder / "data",
            folder / "features.parquet",
            folder / "segments.parquet",
        )
        stages = {
            "generate": [
                "generate",
                "--users",
                str(users),
                "--out",
                str(data),
                "--workers",
                str(workers),
            ],
            "features": [
                "features",
                str(data),
                "--out",
                str(feats),
                "--quarantine",
                str(folder / "q"),
            ],
            "segment": ["segment", str(feats), "--out", str(segs)],
            "cohorts": ["cohorts", str(data), "--out", str(folder / "c")],
            "report": [
                "report",
                str(data),
                "--features",
                str(feats),
                "--segments",
                str(segs),
                "--out",
                str(folder / "r"),
            ],
        }
        measured = {}
        for name, args in stages.items():
            measured[name] = run_stage(args, env)
            print(
                f"{events:>12,} events  {name:<9} {measured[name]['seconds']:8.1f} s  {measured[name]['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
        manifest = json.loads((data / "manifest.json").read_text())
        row = {"events": manifest["counts"]["events"], "users": users, "stages": measured}
        row["data_bytes"] = sum(p.stat().st_size for p in (data / "events").glob("*.parquet"))
        rows.append(row)
        if events != sizes[-1]:
            shutil.rmtree(folder, ignore_errors=True)
    capped = None
    if cap_gb:
        last = rows[-1]
        folder = work / f"n{sizes[-1]}"
        capped = run_stage(
            [
                "features",
                str(folder / "data"),
                "--out",
                str(folder / "capped.parquet"),
                "--quarantine",
                str(folder / "q"),
            ],
            env,
            cap_bytes=int(cap_gb * 2**30),
        )
        capped.update(cap_gb=cap_gb, events=last["events"], in_memory_bytes=last["events"] * 21)
        print(
            f"memory-capped features ({cap_gb} GB cap, {last['events']:,} events): ok={capped['ok']} {capped['seconds']:.1f} s"
        )
    shutil.rmtree(work, ignore_errors=True)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "threads": threads or os.cpu_count(),
        "rows": rows,
        "memory_capped": capped,
        "fits": fit(rows),
    }


def fit(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage: exponent b of time ~ events^b, events/s and peak bytes per event at the top."""
    out = {}
    events = np.array([r["events"] for r in rows], dtype=float)
    for stage in rows[0]["stages"]:
        seconds = np.array([r["stages"][stage]["seconds"] for r in rows])
        rss = np.array([r["stages"][stage]["peak_rss_mb"] for r in rows]) * 2**20
        slope = (
            float(np.polyfit(np.log(events), np.log(seconds), 1)[0])
            if len(rows) > 1
            else float("nan")
        )
        out[stage] = {
            "time_exponent": slope,
            "events_per_s_at_largest": float(events[-1] / seconds[-1]),
            "peak_bytes_per_event_at_largest": float(rss[-1] / events[-1]),
            "rss_exponent": float(np.polyfit(np.log(events), np.log(rss), 1)[0])
            if len(rows) > 1
            else float("nan"),
        }
    return out


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    stages = list(result["rows"][0]["stages"])
    lines = [f"Machine: {result['machine']}; threads: {result['threads']}.", ""]
    lines.append("| events | users | " + " | ".join(f"{s} s / peak MB" for s in stages) + " |")
    lines.append("|---|---|" + "---|" * len(stages))
    for r in result["rows"]:
        cells = [
            f"{r['stages'][s]['seconds']:.1f} / {r['stages'][s]['peak_rss_mb']:.0f}" for s in stages
        ]
        lines.append(f"| {r['events']:,} | {r['users']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| stage | time ~ events^b | events/s (largest) | peak RSS ~ events^b | peak bytes/event (largest) |",
        "|---|---|---|---|---|",
    ]
    for s, f in result["fits"].items():
        lines.append(
            f"| {s} | {f['time_exponent']:.2f} | {f['events_per_s_at_largest'] / 1e6:.2f} M | {f['rss_exponent']:.2f} | {f['peak_bytes_per_event_at_largest']:.1f} |"
        )
    capped = result.get("memory_capped")
    if capped:
        lines += [
            "",
            f"Memory-capped features run: {capped['events']:,} events (~{capped['in_memory_bytes'] / 2**30:.1f} GiB as in-memory columns) under a {capped['cap_gb']} GiB limit ({capped['cap']}): {'completed' if capped['ok'] else 'FAILED'} in {capped['seconds']:.1f} s, peak RSS {capped['peak_rss_mb']:.0f} MB.",
        ]
    (out / "scaling.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [r["events"] for r in result["rows"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in stages:
        ax1.plot(events, [r["stages"][s]["seconds"] for r in result["rows"]], "o-", label=s)
        ax2.plot(events, [r["stages"][s]["peak_rss_mb"] for r in result["rows"]], "o-", label=s)
    for ax, title in ((ax1, "time (s)"), (ax2, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend()
    fig.suptitle(f"ecomscale scaling — {result['machine']}")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)


def write_cores(runs: dict[int, dict[str, Any]], out: Path) -> None:
    """Seconds per stage for each thread count, and the speed-up over the fewest threads."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cores.json").write_text(json.dumps(runs, indent=2) + "\n")
    counts = sorted(runs)
    base = runs[counts[0]]["rows"][0]["stages"]
    first = runs[counts[0]]
    lines = [
        f"Machine: {first['machine']}; {first['rows'][0]['events']:,} events.",
        "",
        "| stage | " + " | ".join(f"{t} thread(s): s (speed-up)" for t in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for stage in base:
        cells = []
        for t in counts:
            seconds = runs[t]["rows"][0]["stages"][stage]["seconds"]
            cells.append(f"{seconds:.1f} ({base[stage]['seconds'] / seconds:.2f}x)")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    (out / "cores.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", default="1M,10M,50M,100M", help="comma-separated sizes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--work", type=Path, default=Path("scaling-work"), help="scratch folder (removed)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-cap-gb", type=float, default=None)
    parser.add_argument(
        "--rewrite", action="store_true", help="only redraw from --out/scaling.json"
    )
    parser.add_argument(
        "--cores",
        default=None,
        help="comma-separated thread counts: time each stage at the first --events size "
        "with each count and write cores.md / cores.json (scaling with cores)",
    )
    args = parser.parse_args()
    if args.cores:
        size = parse_size(args.events.split(",")[0])
        runs = {
            int(t): study([size], args.out, args.work, int(t), None) for t in args.cores.split(",")
        }
        write_cores(runs, args.out)
        return
    if args.rewrite:
        write(json.loads((args.out / "scaling.json").read_text()), args.out)
        return
    start = time.perf_counter()
    result = study(
        [parse_size(s) for s in args.events.split(",")],
        args.out,
        args.work,
        args.threads,
        args.memory_cap_gb,
    )
    write(result, args.out)
    print(
        f"wrote {args.out}/scaling.md, scaling.json, scaling.png in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
