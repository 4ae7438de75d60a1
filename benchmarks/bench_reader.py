# SPDX-License-Identifier: Apache-2.0
"""Measure how fast flowids reads a full-size CIC-IDS2017 dataset, and its peak memory.

Run ``python benchmarks/bench_reader.py [--flows N] [--files N]``. It writes eight day files
that together hold as many flow records as all of CIC-IDS2017 MachineLearningCVE (2,830,743),
by repeating the real rows of the shared 12k sample with every quirk they have, into a
temporary directory that it deletes afterwards. Then each reader runs in a process of its
own, so that the peak resident memory of one never counts for the other.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path("data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz")
CIC_IDS2017_FLOWS = 2_830_743
DAY_FILES = 8


def _shared_sample() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared" / SAMPLE


def write_day_files(folder: Path, n_flows: int, n_files: int) -> list[Path]:
    """Write ``n_files`` CSVs holding ``n_flows`` data lines in all, from the sample's rows.

    Each file starts with the sample's own header line (leading spaces, the duplicated
    'Fwd Header Length'), and its rows are the sample's lines in order, repeated.
    """
    text = gzip.decompress(_shared_sample().read_bytes())
    header, _, body = text.partition(b"\n")
    if not body.endswith(b"\n"):
        body += b"\n"
    lines = body.splitlines(keepends=True)

    paths = []
    per_file = n_flows // n_files
    for number in range(n_files):
        count = per_file + (n_flows - per_file * n_files if number == n_files - 1 else 0)
        path = folder / f"day{number + 1}.csv"
        with open(path, "wb") as handle:
            handle.write(header + b"\n")
            repeats, rest = divmod(count, len(lines))
            for _ in range(repeats):
                handle.write(body)
            handle.write(b"".join(lines[:rest]))
        paths.append(path)
    return paths


def _child(reader: str, paths: list[str]) -> None:
    """Read the files with one reader and print flows and seconds as JSON (child process)."""
    if reader == "flowids":
        from flowids.data.readers import read_flows
        from flowids.data.validity import ValidityPolicy

        start = time.perf_counter()
        table = read_flows(paths, validity=ValidityPolicy.parse("repair"))
        seconds = time.perf_counter() - start
        flows = len(table)
    else:
        import pandas as pd

        start = time.perf_counter()
        frame = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
        seconds = time.perf_counter() - start
        flows = len(frame)
    print(json.dumps({"flows": flows, "seconds": seconds}))


def measure(reader: str, paths: list[Path]) -> dict:
    """Run one reader in a child process; return its flows, seconds, CPU time and peak RSS."""
    command = [sys.executable, __file__, "--child", reader, *map(str, paths)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.stdout.close()
    if status != 0:
        raise SystemExit(f"bench_reader: the {reader} reader failed (wait status {status})")
    result = json.loads(output)
    # ru_maxrss is in KiB on Linux.
    result.update(
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_gb=usage.ru_maxrss * 1024 / 1e9,
        load_before=load,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=CIC_IDS2017_FLOWS, help="flow records")
    parser.add_argument("--files", type=int, default=DAY_FILES, help="day files to spread over")
    parser.add_argument(
        "--readers",
        default="flowids,pandas",
        help="comma-separated: flowids, pandas (default: both)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1:])
        return 0

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({usable} usable)")
    print(f"python: {platform.python_version()}")
    folder = Path(tempfile.mkdtemp(prefix="flowids-bench-reader-"))
    try:
        start = time.perf_counter()
        paths = write_day_files(folder, args.flows, args.files)
        size = sum(path.stat().st_size for path in paths)
        print(
            f"input: {args.flows:,} flow records in {len(paths)} files, {size / 1e6:,.0f} MB, "
            f"repeated from {SAMPLE.name} (written in {time.perf_counter() - start:.1f} s)"
        )
        for reader in args.readers.split(","):
            result = measure(reader.strip(), paths)
            rate = result["flows"] / result["seconds"]
            print(
                f"{reader.strip()}: {result['flows']:,} flows in {result['seconds']:.1f} s = "
                f"{rate:,.0f} flows/s; CPU {result['cpu_seconds']:.1f} s "
                f"({result['flows'] / result['cpu_seconds']:,.0f} flows per CPU-second); "
                f"peak RSS {result['peak_rss_gb']:.2f} GB; load before {result['load_before']:.1f}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
