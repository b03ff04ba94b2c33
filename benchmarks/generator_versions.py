"""Generation speed of this generator against a previous version, in the same run.

The previous version is exported from git (``git archive REV synth engine``) into a temporary
folder and run from there; the two alternate, one process per run, so they share the
machine's state. Recorded per version: events, best events/s and the part's peak RSS, for
the default config and for ``new_users=0`` (every user present all window, as in version 2,
so both make about as many events per user); and this version over a 365-day window with a
tenth of the users, against its own 30-day speed.

    python -m benchmarks.generator_versions [--rev f476e4d] [--users 200000] [--rounds 3]

Writes benchmarks/results/generator.json. Needs the git history (not run in CI).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "generator.json"
ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "f476e4d"  # generator version 2, the last commit before version 3

RUN = """
import json, sys, tempfile, time
sys.path.insert(0, {root!r})
from synth import SynthConfig
from synth.dataset import _generate_part
import inspect
fields = inspect.signature(SynthConfig).parameters
extra = {{"new_users": 0.0}} if {flat} and "new_users" in fields else {{}}
config = SynthConfig(users={users}, days={days}, seed=2024, part_users={part}, **extra)
out = tempfile.mkdtemp()
start = time.perf_counter()
result = _generate_part(config, 0, __import__("pathlib").Path(out))
seconds = time.perf_counter() - start
print(json.dumps({{"events": result.events, "seconds": seconds, "rss_mb": result.peak_rss_mb}}))
"""


def _export(rev: str, into: Path) -> Path:
    archive = into / "previous.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), rev, "synth", "engine"], cwd=ROOT, check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "previous", filter="data")
    return into / "previous"


def _one(root: Path, users: int, flat: bool, days: int = 30) -> dict:
    part = -(-users // 4096) * 4096  # one part: one worker process, as in the benchmark
    code = RUN.format(root=str(root), users=users, part=part, flat=flat, days=days)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=PREVIOUS)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        previous = _export(args.rev, Path(tmp))
        for flat in (False, True):
            runs: dict[str, list[dict]] = {"previous": [], "current": []}
            for _ in range(args.rounds):
                for name, root in (("previous", previous), ("current", ROOT)):
                    runs[name].append(_one(root, args.users, flat))
            row = {"config": "new_users=0" if flat else "default", "users": args.users}
            for name, results in runs.items():
                best = min(results, key=lambda r: r["seconds"])
                row[name] = {
                    "events": best["events"],
                    "events_per_s": best["events"] / best["seconds"],
                    "rss_mb": max(r["rss_mb"] for r in results),
                }
            row["ratio"] = row["current"]["events_per_s"] / row["previous"]["events_per_s"]
            rows.append(row)
            print(json.dumps(row))
    # A year-long window at about the same number of events: the speed per event holds.
    year = min(
        (_one(ROOT, args.users // 10, False, 365) for _ in range(args.rounds)),
        key=lambda r: r["seconds"],
    )
    month = rows[0]["current"]
    long_window = {
        "days": 365,
        "users": args.users // 10,
        "events": year["events"],
        "events_per_s": year["events"] / year["seconds"],
        "rss_mb": year["rss_mb"],
        "vs_30_days": year["events"] / year["seconds"] / month["events_per_s"],
    }
    print(json.dumps(long_window))
    study = {"previous_rev": args.rev, "rows": rows, "year": long_window}
    RESULTS.write_text(json.dumps(study, indent=2) + "\n")


if __name__ == "__main__":
    main()
