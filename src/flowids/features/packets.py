# SPDX-License-Identifier: Apache-2.0
"""Turn packet captures into CIC-IDS2017 flow records, with NFStream as the packet and flow engine.

``flowids extract`` writes the CIC-IDS2017 GeneratedLabelledFlows columns (names and units),
so that flowids reads its own output as the 'cicids2017' dialect and a run trained on
CIC-IDS2017 can score it. NFStream decodes packets and keeps the flow table; a plugin adds
what CICFlowMeter needs and NFStream lacks. docs/parity.md compares the result with the Java
CICFlowMeter.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import glob
import logging
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flowids.errors import DataError, UsageError
from flowids.features._cicflow import (
    CIC_COLUMNS,
    N_IDENTIFIERS,
    ROW_COLUMNS,
)
from flowids.features._meter import MeterSettings, worker
from flowids.features._pcapfile import (
    LINK_TYPES,
    CaptureError,
    CaptureFile,
    readable_copy,
    scan_capture,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CaptureError",
    "CaptureReport",
    "ExtractReport",
    "ExtractSettings",
    "expand_captures",
    "extract_flows",
    "stream_flows",
]

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")
_EPOCH = dt.datetime(1970, 1, 1)
_DURATION = N_IDENTIFIERS
_RATE_COLUMNS = (
    ROW_COLUMNS.index("flow_bytes_per_s"),
    ROW_COLUMNS.index("flow_packets_per_s"),
)


@dataclass(frozen=True)
class ExtractSettings:
    """How packets become flows. Defaults follow the Java CICFlowMeter.

    Attributes
    ----------
    active_timeout_s : float
        A flow ends when a packet arrives this long after the flow's first packet; that
        packet starts a new flow (CICFlowMeter's "flow timeout", 120 s).
    idle_timeout_s : float
        A flow also ends after this long without packets. CICFlowMeter has no idle timeout
        of its own; 120 s (the same as the active timeout) changes nothing offline. Lower
        it in live mode to export flows sooner.
    activity_timeout_s : float
        A gap longer than this ends an active period and starts an idle one, for the
        Active and Idle features (CICFlowMeter's "activity timeout", 5 s).
    end_on_fin : bool
        End a TCP flow with the first FIN packet after its first packet, as CICFlowMeter
        does; later packets of the connection (the other FIN, the last ACK) start a new flow.
    max_active_flows : int
        Flows held at once; beyond it the least recently seen flow is ended early and
        counted as evicted. Bounds memory in live mode.
    """

    active_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    activity_timeout_s: float = 5.0
    end_on_fin: bool = True
    max_active_flows: int = 500_000

    def __post_init__(self) -> None:
        for name in ("active_timeout_s", "idle_timeout_s", "activity_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"{name} is {value!r}; expected a positive number of seconds")
        if int(self.max_active_flows) < 1:
            raise UsageError(
                f"max_active_flows is {self.max_active_flows!r}; expected a positive number"
            )

    def meter_settings(self, **extra) -> MeterSettings:
        return MeterSettings(
            active_timeout_ms=max(1, round(self.active_timeout_s * 1000)),
            idle_timeout_ms=max(1, round(self.idle_timeout_s * 1000)),
            activity_timeout_us=round(self.activity_timeout_s * 1e6),
            end_on_fin=self.end_on_fin,
            max_active_flows=int(self.max_active_flows),
            **extra,
        )

    def to_dict(self) -> dict:
        return {
            "active_timeout_s": self.active_timeout_s,
            "idle_timeout_s": self.idle_timeout_s,
            "activity_timeout_s": self.activity_timeout_s,
            "end_on_fin": self.end_on_fin,
            "max_active_flows": self.max_active_flows,
        }


@dataclass
class CaptureReport:
    """Counts for one capture (file or interface).

    ``packets_read == packets_in_flows + sum(skipped.values())`` always holds.
    """

    source: str
    format: str = ""
    link_types: tuple[int, ...] = ()
    packets_read: int = 0
    packets_in_flows: int = 0
    skipped: Counter = field(default_factory=Counter)
    flows: int = 0
    problem: str | None = None
    out_of_order: int = 0
    evicted_flows: int = 0
    dropped: int = 0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "link_types": [LINK_TYPES.get(lt, str(lt)) for lt in self.link_types],
            "packets_read": self.packets_read,
            "packets_in_flows": self.packets_in_flows,
            "packets_skipped": dict(self.skipped),
            "flows": self.flows,
            "problem": self.problem,
            "out_of_order_packets": self.out_of_order,
            "evicted_flows": self.evicted_flows,
            "dropped_by_kernel": self.dropped,
        }

    def summary(self) -> str:
        """One line: packets read, in flows, skipped (with reasons), flows."""
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{n:,} {why}" for why, n in self.skipped.most_common())
        return (
            f"{self.source}: read {self.packets_read:,} packets, {self.packets_in_flows:,} in "
            f"{self.flows:,} flows, skipped {skipped:,}{f' ({reasons})' if reasons else ''}"
        )


@dataclass
class ExtractReport:
    """What :func:`extract_flows` read and wrote."""

    captures: list[CaptureReport]
    flows_written: int
    output: Path | None
    seconds: float
    settings: ExtractSettings

    @property
    def packets_read(self) -> int:
        return sum(c.packets_read for c in self.captures)

    @property
    def packets_skipped(self) -> int:
        return sum(sum(c.skipped.values()) for c in self.captures)

    def to_dict(self) -> dict:
        return {
            "captures": [c.to_dict() for c in self.captures],
            "flows_written": self.flows_written,
            "packets_read": self.packets_read,
            "packets_skipped": self.packets_skipped,
            "output": str(self.output) if self.output else None,
            "seconds": self.seconds,
            "settings": self.settings.to_dict(),
        }


def expand_captures(specs: Iterable[str | Path]) -> list[Path]:
    """Files, directories (their .pcap/.pcapng/.cap files) and globs, as a list of files.

    Raises
    ------
    DataError
        If a path does not exist, a pattern matches nothing, or a directory has no capture.
    """
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES
            )
            if not found:
                raise DataError(
                    f"{path}: directory holds no capture file ({', '.join(CAPTURE_SUFFIXES)})"
                )
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        elif any(ch in str(spec) for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
            if not found:
                raise DataError(f"{spec}: the pattern matches no file")
            paths.extend(found)
        else:
            raise DataError(f"{spec}: no such capture file or directory")
    if not paths:
        raise UsageError("no capture given (expected one or more pcap or pcapng files)")
    return list(dict.fromkeys(paths))


def scan_captures(paths: list[Path]) -> list[CaptureFile]:
    """Check every capture before any is read, so a bad one fails the command at once."""
    captures = [scan_capture(path) for path in paths]
    for capture in captures:
        if capture.problem:
            logger.warning(
                "%s: %s; reading the %s complete packet records before it",
                capture.path,
                capture.problem,
                f"{capture.records:,}",
            )
    return captures


def stream_flows(
    captures: list[CaptureFile] | None,
    settings: ExtractSettings,
    *,
    interface: str | None = None,
    live_options: dict | None = None,
    on_report=None,
    on_stats=None,
) -> Iterator[list[tuple]]:
    """Batches of flow rows (:data:`ROW_COLUMNS` order) from captures or a live interface.

    The packet reader starts at once, in a child process, before the first batch is asked
    for. ``on_report`` gets each finished :class:`CaptureReport`; ``on_stats`` gets live
    counters. In live mode, Ctrl-C (SIGINT) stops the capture: every flow held is ended and
    yielded before the iteration ends.
    """
    context = multiprocessing.get_context(_start_method())
    receiver, sender = context.Pipe(duplex=False)
    stop = context.Event()
    scratch = tempfile.TemporaryDirectory(prefix="flowids-capture-")
    if interface is not None:
        jobs = [(interface, interface)]
        meter = settings.meter_settings(**(live_options or {}))
        by_source: dict = {interface: None}
    else:
        jobs = [(str(_readable(c, scratch.name)), str(c.path)) for c in captures]
        meter = settings.meter_settings()
        by_source = {str(c.path): c for c in captures}
    process = context.Process(
        target=worker,
        args=(sender, jobs, meter, interface is not None, stop),
        name="flowids-meter",
        daemon=True,
    )
    previous = _stop_on_signals(stop) if interface is not None else {}
    process.start()
    sender.close()
    live = interface is not None
    return _batches(
        process, receiver, stop, scratch, live, by_source, on_report, on_stats, previous
    )


def _start_method() -> str:
    """'fork' (fast) unless JAX is loaded: forking its threads can deadlock the child."""
    return "spawn" if "jax" in sys.modules else "fork"


def _stop_on_signals(stop) -> dict:
    """Make Ctrl-C and SIGTERM ask the live reader to stop; return the handlers replaced.

    The reader then ends every flow it holds and sends it, so the batches that follow are
    still scored and written.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum, frame) -> None:
        logger.info("stopping: ending every flow held and writing it")
        stop.set()

    return {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }


def _batches(process, receiver, stop, scratch, live, by_source, on_report, on_stats, previous):
    try:
        yield from _receive(receiver, stop, live, by_source, on_report, on_stats)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        receiver.close()
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join()
        scratch.cleanup()


def _readable(capture: CaptureFile, scratch: str) -> Path:
    return capture.path if capture.complete else readable_copy(capture, scratch)


def _receive(receiver, stop, live: bool, by_source: dict, on_report, on_stats):
    while True:
        try:
            kind, payload = receiver.recv()
        except EOFError:
            raise DataError(
                "the packet reader stopped without a report (killed, or out of memory?)"
            ) from None
        except KeyboardInterrupt:
            if not live:
                raise
            logger.info("interrupted: ending every flow held and writing it")
            stop.set()
            continue
        if kind == "rows":
            yield payload
        elif kind == "stats":
            if on_stats is not None:
                on_stats(payload)
        elif kind == "source_done":
            if on_report is not None:
                on_report(_capture_report(payload, by_source.get(payload["source"])))
        elif kind == "error":
            raise CaptureError(f"reading packets failed: {payload}")
        else:
            return


def _capture_report(payload: dict, capture: CaptureFile | None) -> CaptureReport:
    report = CaptureReport(
        source=payload["source"],
        packets_read=payload["packets_read"],
        packets_in_flows=payload["packets_in_flows"],
        skipped=Counter(payload["skipped"]),
        flows=payload["flows"],
        out_of_order=payload.get("out_of_order", 0),
        evicted_flows=payload.get("evicted_flows", 0),
        dropped=payload.get("dropped", 0),
    )
    if capture is not None:
        report.format = capture.format
        report.link_types = capture.link_types
        report.problem = capture.problem
        if capture.problem:
            report.skipped[f"damaged file: {capture.problem}"] += 1
            report.packets_read += 1
    report.skipped = Counter({why: n for why, n in report.skipped.items() if n})
    return report


def check_capture_report(report: CaptureReport) -> None:
    """Refuse a capture that holds packets but gave no flow, naming why they were skipped."""
    if report.flows == 0 and report.packets_read > 0:
        reasons = ", ".join(f"{n:,} {why}" for why, n in report.skipped.most_common(5))
        raise CaptureError(
            f"{report.source}: {report.packets_read:,} packets read but no flow made of them "
            f"(skipped: {reasons or 'none'}); expected TCP, UDP or other IP traffic"
        )


def iso_time(us: int) -> str:
    """UTC time of a microsecond timestamp, as 'yyyy-mm-dd hh:mm:ss.ffffff'."""
    seconds, fraction = divmod(us, 1_000_000)
    return f"{_second_text(seconds)}.{fraction:06d}"


@functools.lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    return (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float) -> str | float:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def csv_cells(row: tuple) -> list:
    """A flow row as CSV cells: the timestamp as UTC ISO text, CIC's 'Infinity' and 'NaN'."""
    cells = list(row)
    cells[N_IDENTIFIERS - 1] = iso_time(row[N_IDENTIFIERS - 1])
    if row[_DURATION] == 0:
        for index in _RATE_COLUMNS:
            cells[index] = _number(row[index])
    return cells


def rows_to_frame(rows: list[tuple]) -> pd.DataFrame:
    """Flow rows as a DataFrame with canonical column names (identifiers, then features)."""
    return pd.DataFrame.from_records(rows, columns=list(ROW_COLUMNS))


def extract_flows(
    pcaps: Iterable[str | Path],
    output: str | Path,
    settings: ExtractSettings | None = None,
    label: str | None = None,
) -> ExtractReport:
    """Read packet captures and write their flows as a CIC-IDS2017 flow CSV.

    Parameters
    ----------
    pcaps : iterable of str or Path
        pcap or pcapng files, directories of them, or glob patterns. Each file is read on
        its own: no flow spans two files.
    output : str or Path
        The CSV to write; it appears only when complete (written to a temporary file first).
    settings : ExtractSettings, optional
        Timeouts; CICFlowMeter's by default.
    label : str, optional
        Written in a 'Label' column on every flow; without it there is no Label column.

    Returns
    -------
    ExtractReport
        Per capture: packets read, in flows and skipped (by reason), flows written.

    Raises
    ------
    CaptureError
        A file that is not a capture, has an unsupported link type, or holds packets but
        gives no flow.

    Notes
    -----
    Columns: Flow ID, Source IP, Source Port, Destination IP, Destination Port, Protocol,
    Timestamp (UTC, 'yyyy-mm-dd hh:mm:ss.ffffff'), then the 76 features with their
    CIC-IDS2017 names; durations and inter-arrival times in microseconds. A truncated or
    damaged file is read up to its last complete record and the rest is reported as skipped.
    """
    settings = settings or ExtractSettings()
    output = Path(output)
    if not output.parent.exists():
        raise UsageError(f"{output}: directory {output.parent} does not exist")
    captures = scan_captures(expand_captures(pcaps))
    reports: list[CaptureReport] = []
    started = time.perf_counter()
    written = 0

    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*CIC_COLUMNS, "Label"] if label is not None else CIC_COLUMNS)
            for rows in stream_flows(captures, settings, on_report=reports.append):
                cells = [csv_cells(row) for row in rows]
                if label is not None:
                    cells = [[*row, label] for row in cells]
                writer.writerows(cells)
                written += len(rows)
        for report in reports:
            logger.info("%s", report.summary())
            check_capture_report(report)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()

    report = ExtractReport(reports, written, output, time.perf_counter() - started, settings)
    logger.info(
        "wrote %s flows from %d capture(s) to %s in %.2f s",
        f"{written:,}",
        len(reports),
        output,
        report.seconds,
    )
    return report
