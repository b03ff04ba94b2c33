"""generate_dataset: config -> user blocks -> parts written by workers -> atomic dataset folder."""

from __future__ import annotations

import json
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from engine.exceptions import ConfigError
from engine.io.atomic import atomic_dir
from engine.schema import (
    COLLECTIONS_FILE,
    EVENT_TYPES,
    EVENTS_DIR,
    EVENTS_SCHEMA,
    EXPERIMENTS_FILE,
    MANIFEST,
    PERSONAS_FILE,
    PRODUCTS_FILE,
    PURCHASE_PROCESS_FILE,
    SCHEMA_VERSION,
    USERS_FILE,
    arrow_schema,
)
from synth import arrow, dirty
from synth.catalogue import STREAM_DIRTY, Catalogue, build_catalogue
from synth.config import RNG_BLOCK_USERS, SynthConfig
from synth.events import behaviour, events_block
from synth.users import users_block
from synth.writer import BucketedWriter, RowGroupWriter, iter_files, sha256_file, write_table

GENERATOR_VERSION = "3"
_DIRTY_EVENT_TYPE = pa.dictionary(pa.int8(), pa.large_string())


@dataclass
class PartResult:
    """What one worker wrote: one events part plus the users of its range."""

    part: int
    events: int
    event_counts: dict[str, int]
    users: pa.Table
    truth: dict[str, pa.Table]  # truth file -> the part's rows
    dirty_counts: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # of the process that wrote the part (not in the manifest)
    file_hashes: dict[str, str] = field(default_factory=dict)  # sha256 of the part's files


def _events_table(cols: dict[str, np.ndarray], null_price: np.ndarray | None) -> pa.Table:
    schema = arrow_schema(EVENTS_SCHEMA)
    if null_price is None:
        event_type = arrow.dictionary(cols["event_type"].astype(np.uint8), EVENT_TYPES)
    else:  # dirty data may hold unknown event types, so it leaves the Enum contract
        field_index = schema.get_field_index("event_type")
        schema = schema.set(field_index, pa.field("event_type", _DIRTY_EVENT_TYPE))
        event_type = arrow.dictionary(cols["event_type"], [*EVENT_TYPES, dirty.UNKNOWN_EVENT_TYPE])
    arrays = [
        arrow.numbers(cols["user_id"]),
        arrow.numbers(cols["ts"], pa.timestamp("us", tz="UTC")),
        event_type,
        arrow.numbers(cols["product_id"]),
        arrow.numbers(cols["price"], null=null_price),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def peak_rss_mb() -> float:
    """This process's peak RSS in MB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a process forked from a big
    parent would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate_part(config: SynthConfig, part: int, events_dir: Path) -> PartResult:
    """Generate and write events part ``part`` (users part*part_users onwards)."""
    pa.set_cpu_count(1)  # one worker per core; avoid oversubscription
    catalogue: Catalogue = build_catalogue(config)
    model = behaviour(config)
    first_block = part * config.part_users // RNG_BLOCK_USERS
    n_blocks_total = -(-config.users // RNG_BLOCK_USERS)
    last_block = min(first_block + config.part_users // RNG_BLOCK_USERS, n_blocks_total)
    blocks_per_chunk = config.block_users // RNG_BLOCK_USERS
    dirty_run = config.dirty > 0
    schema = _events_table(
        {k: np.empty(0, t) for k, t in _EMPTY.items()}, np.empty(0, bool) if dirty_run else None
    ).schema
    name = f"part-{part:05d}.parquet"
    writer: RowGroupWriter | BucketedWriter = (
        BucketedWriter(events_dir, name, schema, config.row_group_rows, config.buckets)
        if config.buckets
        else RowGroupWriter(events_dir / name, schema, config.row_group_rows)
    )
    type_counts = np.zeros(len(EVENT_TYPES) + 1, dtype=np.int64)
    dirty_counts: dict[str, int] = dict.fromkeys(dirty.EVENT_KINDS, 0)
    users, events = [], 0
    truth: dict[str, list[pa.Table]] = {PERSONAS_FILE: [], PURCHASE_PROCESS_FILE: []}
    if config.experiments:
        truth[EXPERIMENTS_FILE] = []
    for chunk_start in range(first_block, last_block, blocks_per_chunk):
        tables = []
        for block in range(chunk_start, min(chunk_start + blocks_per_chunk, last_block)):
            draws, users_tbl, personas_tbl = users_block(config, block, model.category_at)
            users.append(users_tbl)
            cols, process_tbl, experiments_tbl = events_block(
                config, catalogue, model, block, block * RNG_BLOCK_USERS, draws
            )
            truth[PERSONAS_FILE].append(personas_tbl)
            truth[PURCHASE_PROCESS_FILE].append(process_tbl)
            if config.experiments:
                truth[EXPERIMENTS_FILE] += experiments_tbl
            null_price = None
            if dirty_run:
                rng = np.random.default_rng([config.seed, STREAM_DIRTY, block])
                cols, null_price, counts = dirty.dirty_events(cols, config.dirty, rng)
                for kind, count in counts.items():
                    dirty_counts[kind] += count
            type_counts += np.bincount(cols["event_type"], minlength=type_counts.size)
            events += cols["ts"].size
            tables.append(_events_table(cols, null_price))
        writer.write(pa.concat_tables(tables))
    writer.close()
    root = events_dir.parent
    # Hashed here, in the worker, in parallel with the other parts (not serially at the end).
    hashes = {str(path.relative_to(root)): sha256_file(path) for path in writer.paths}
    return PartResult(
        part=part,
        events=events,
        event_counts={
            name: int(c)
            for name, c in zip([*EVENT_TYPES, dirty.UNKNOWN_EVENT_TYPE], type_counts, strict=True)
            if c or name in EVENT_TYPES
        },
        users=pa.concat_tables(users),
        truth={name: pa.concat_tables(tables) for name, tables in truth.items()},
        dirty_counts=dirty_counts if dirty_run else {},
        peak_rss_mb=peak_rss_mb(),
        file_hashes=hashes,
    )


_EMPTY = {
    "user_id": np.uint32,
    "ts": np.int64,
    "event_type": np.int8,
    "product_id": np.uint32,
    "price": np.float32,
}


def _file_hashes(root: Path, results: list[PartResult]) -> dict[str, str]:
    """sha256 of every file under ``root``: the parts' from their workers, the rest here."""
    hashes = {name: digest for result in results for name, digest in result.file_hashes.items()}
    for path in iter_files(root):
        name = str(path.relative_to(root))
        if name not in hashes:
            hashes[name] = sha256_file(path)
    return hashes


def generate_dataset(
    config: SynthConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    on_part: Callable[[PartResult, int], None] | None = None,
) -> dict[str, Any]:
    """Generate a dataset folder as the dataset contract describes, atomically.

    Args:
        config: what to generate.
        out_dir: the dataset folder to create; it appears only when complete.
        workers: worker processes (1 runs in this process). The output does not depend on it.
        overwrite: replace an existing dataset at ``out_dir``.
        on_part: called with each finished part and the total number of parts (progress).

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    with atomic_dir(out_dir, overwrite=overwrite) as staging:
        return _generate_into(config, staging, workers, on_part)


def _generate_into(
    config: SynthConfig,
    root: Path,
    workers: int,
    on_part: Callable[[PartResult, int], None] | None,
) -> dict[str, Any]:
    events_dir = root / EVENTS_DIR
    events_dir.mkdir()
    (root / PERSONAS_FILE).parent.mkdir()
    n_parts = -(-config.users // config.part_users)
    results: list[PartResult] = []
    # users and truth rows are appended part by part as parts finish (in part order), so
    # writing them overlaps the workers; row groups are cut by size, so the bytes are those
    # of one write of the whole table.
    tables: dict[str, RowGroupWriter] = {}

    def done(result: PartResult) -> None:
        for name, rows in ((USERS_FILE, result.users), *result.truth.items()):
            if name not in tables:
                tables[name] = RowGroupWriter(root / name, rows.schema, config.row_group_rows)
            tables[name].write(rows)
        result.users, result.truth = result.users.slice(0, 0), {}
        results.append(result)  # counts only: the rows are written, not kept
        if on_part is not None:
            on_part(result, n_parts)

    if workers == 1 or n_parts == 1:
        for part in range(n_parts):
            done(_generate_part(config, part, events_dir))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, n_parts), mp_context=context) as pool:
            futures = [pool.submit(_generate_part, config, p, events_dir) for p in range(n_parts)]
            for future in futures:  # in part order
                done(future.result())
    for writer in tables.values():
        writer.close()

    catalogue = build_catalogue(config)
    write_table(catalogue.collections, root / COLLECTIONS_FILE, config.row_group_rows)
    products = catalogue.table
    dirty_counts: dict[str, int] = {}
    if config.dirty > 0:
        rng = np.random.default_rng([config.seed, STREAM_DIRTY, 2**31])
        products, dirty_counts = dirty.dirty_products(products, config.dirty, rng)
        for result in results:
            for kind, count in result.dirty_counts.items():
                dirty_counts[kind] = dirty_counts.get(kind, 0) + count
    write_table(products, root / PRODUCTS_FILE, config.row_group_rows)

    event_counts: dict[str, int] = {}
    for result in results:
        for name, count in result.event_counts.items():
            event_counts[name] = event_counts.get(name, 0) + count
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "generator": f"ecomscale.synth/{GENERATOR_VERSION}",
        "seed": config.seed,
        "config": config.to_json(),
        "counts": {
            "users": config.users,
            "products": config.products,
            "events": sum(r.events for r in results),
            "event_types": event_counts,
            "parts": n_parts,
        },
        "layout": {"buckets": config.buckets},
        "dirty": dirty_counts,
        "experiments": [
            {
                "name": e.name,
                "lift": e.lift,
                "split": e.split,
                "start_day": e.start_day,
                "true_effect": {"customer_purchase_session_rate_ratio": 1.0 + e.lift},
            }
            for e in config.experiments
        ],
        "files": _file_hashes(root, results),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
