# SPDX-License-Identifier: Apache-2.0
"""Measure packets/s and flows/s of `flowids extract` and `flowids detect` on the shared captures.

Run ``python benchmarks/bench_packets.py [--run RUN] [--repeats 3]`` from the repository root;
benchmarks/README.md ("Packets") says what each printed line means.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse
import cProfile
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

from flowids.features._meter import meter_file
from flowids.features.packets import ExtractSettings, csv_cells, extract_flows

PCAP_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pcap"
TRAIN_DATA = PCAP_DIR.parent / "cicids2017" / "wednesday_random_sample_1k_mlcve.csv"


class _Collect:
    """Stands in for the pipe to the parent: keeps the rows the meter sends."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def send(self, message) -> None:
        if message[0] == "rows":
            self.rows.extend(message[1])


def _best(seconds: list[float]) -> float:
    return min(seconds)


def bench_extract(captures: list[Path], repeats: int, scratch: Path) -> None:
    """Per capture and for all together: packets/s and flows/s of extract_flows, best of N."""
    print(
        f"{'capture':40s} {'packets':>8s} {'flows':>7s} {'s':>7s} {'packets/s':>10s} "
        f"{'flows/s':>9s}"
    )
    for capture in [*captures, None]:
        sources = captures if capture is None else [capture]
        seconds = []
        for _ in range(repeats):
            report = extract_flows(sources, scratch / "flows.csv")
            seconds.append(report.seconds)
        best = _best(seconds)
        name = "ALL (one command)" if capture is None else capture.name
        print(
            f"{name:40s} {report.packets_read:8,d} {report.flows_written:7,d} {best:7.3f} "
            f"{report.packets_read / best:10,.0f} {report.flows_written / best:9,.0f}"
        )


def where_time_goes(capture: Path) -> None:
    """Split one capture's extraction into metering (in one process) and CSV formatting."""
    settings = ExtractSettings().meter_settings()
    sink = _Collect()
    started = time.perf_counter()
    meter_file(str(capture), capture.name, settings, sink)
    meter_s = time.perf_counter() - started

    started = time.perf_counter()
    cells = [csv_cells(row) for row in sink.rows]
    import csv
    import io

    csv.writer(io.StringIO()).writerows(cells)
    csv_s = time.perf_counter() - started

    profile = cProfile.Profile()
    profile.enable()
    meter_file(str(capture), capture.name, settings, _Collect())
    profile.disable()
    shares = {"NFStream (engine, flow table, packet objects)": 0.0, "flowids plugin": 0.0}
    other = 0.0
    for (filename, _, _), row in pstats.Stats(profile).stats.items():
        tottime = row[2]
        if "nfstream" in filename or filename.startswith("<"):
            shares["NFStream (engine, flow table, packet objects)"] += tottime
        elif "flowids" in filename:
            shares["flowids plugin"] += tottime
        else:
            other += tottime
    total = sum(shares.values()) + other
    print(f"\nwhere the time goes, {capture.name} ({len(sink.rows):,} flows):")
    print(f"  metering process (packets -> flow rows): {meter_s:.3f} s")
    print(f"  parent process (rows -> CSV text):       {csv_s:.3f} s")
    print("  metering split (cProfile, own time):")
    for name, seconds in shares.items():
        print(f"    {name:48s} {seconds / total:5.0%}")
    print(f"    {'C calls and the rest':48s} {other / total:5.0%}")


def bench_detect(captures: list[Path], run_spec: str | None, scratch: Path) -> None:
    """detect end to end (read, meter, score, write alerts) on every capture, once."""
    from flowids.cli import main as cli_main
    from flowids.detect import detect
    from flowids.predict import load_trained_run

    if run_spec is None:
        runs_dir = scratch / "runs"
        cli_main(
            ["train", "--data", str(TRAIN_DATA), "--epochs", "2", "-q", "--runs-dir", str(runs_dir)]
        )
        run_spec = str(next(p for p in runs_dir.iterdir() if p.is_dir()))
    run = load_trained_run(run_spec)
    detect(run, scratch / "warm.jsonl", pcaps=[captures[0]])  # compiles the model once
    started = time.perf_counter()
    report = detect(run, scratch / "alerts.jsonl", pcaps=captures)
    seconds = time.perf_counter() - started
    print(
        f"\ndetect, all captures, one command: {report.packets_read:,} packets, "
        f"{report.flows:,} flows, {report.alerts:,} alerts in {seconds:.3f} s: "
        f"{report.packets_read / seconds:,.0f} packets/s, {report.flows / seconds:,.0f} flows/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", help="run directory for detect (default: train a tiny one)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per capture (best kept)")
    parser.add_argument("--no-detect", action="store_true", help="time extract only")
    args = parser.parse_args()

    import nfstream

    captures = sorted(p for p in PCAP_DIR.iterdir() if p.suffix in (".pcap", ".pcapng"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}, "
        f"NFStream {nfstream.__version__}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        bench_extract(captures, args.repeats, Path(scratch))
        where_time_goes(PCAP_DIR / "lucid_syn2020_chunk.pcap")
        where_time_goes(PCAP_DIR / "kihy_slowloris.pcap")
        if not args.no_detect:
            bench_detect(captures, args.run, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
