# SPDX-License-Identifier: Apache-2.0
"""Detect attack flows in packet captures or on a live interface, and write EVE-shaped alerts.

Packets become CIC-IDS2017 flows (:mod:`flowids.features.packets`), a trained run scores
them with its saved preprocessing and model, and every flow at or above the run's threshold
becomes one JSON line shaped like a Suricata EVE alert.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowids.data.schema import CIC2017, FEATURES
from flowids.errors import UsageError
from flowids.features._cicflow import CIC_COLUMNS, ROW_COLUMNS
from flowids.features.packets import (
    CaptureReport,
    ExtractSettings,
    check_capture_report,
    csv_cells,
    expand_captures,
    iso_time,
    rows_to_frame,
    scan_captures,
    stream_flows,
)
from flowids.features.windows import WindowState, flow_keys
from flowids.predict import TrainedRun

logger = logging.getLogger(__name__)

SIGNATURE_ID = 9_200_001
SCORE_BATCH = 4096  # flows scored at once reading files (the model's fixed batch size)
ALERT_CATEGORY = "Potentially Bad Traffic"
_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP"}
_AT = {name: index for index, name in enumerate(ROW_COLUMNS)}


@dataclass
class DetectReport:
    """What :func:`detect` read, scored and wrote."""

    run_id: str
    threshold: float
    captures: list[CaptureReport] = field(default_factory=list)
    flows: int = 0
    alerts: int = 0
    output: Path | None = None
    flows_output: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def packets_read(self) -> int:
        return sum(c.packets_read for c in self.captures)


def run_id_of(run: TrainedRun) -> str:
    """The run's id from its run.json, or its directory name."""
    try:
        record = json.loads((run.path / "run.json").read_text(encoding="utf-8"))
        return str(record.get("run_id") or run.path.name)
    except (OSError, ValueError):
        return run.path.name


def severity(probability: float) -> int:
    """EVE severity (1 is the highest) from the attack probability."""
    if probability >= 0.9:
        return 1
    return 2 if probability >= 0.7 else 3


def eve_time(us: int) -> str:
    """Suricata's timestamp form: '2017-07-07T15:56:12.123456+0000' (UTC)."""
    return iso_time(us).replace(" ", "T") + "+0000"


def eve_flow_id(row: tuple) -> int:
    """A stable 63-bit flow id from the flow's identifiers and start time."""
    text = f"{row[0]}|{row[_AT['start_us']]}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def eve_alert(row: tuple, probability: float, run_id: str, threshold: float) -> dict:
    """One flow row and its attack probability as a Suricata EVE alert event.

    Notes
    -----
    ``flow.bytes_toserver`` and ``bytes_toclient`` count TCP/UDP payload bytes, as the CIC
    features do, not whole packets as Suricata does.
    """
    start = row[_AT["start_us"]]
    end = start + int(row[_AT["flow_duration_us"]])
    protocol = int(row[_AT["protocol"]])
    return {
        "timestamp": eve_time(start),
        "flow_id": eve_flow_id(row),
        "event_type": "alert",
        "src_ip": row[_AT["src_ip"]],
        "src_port": int(row[_AT["src_port"]]),
        "dest_ip": row[_AT["dst_ip"]],
        "dest_port": int(row[_AT["dst_port"]]),
        "proto": _PROTOCOLS.get(protocol, str(protocol)),
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": SIGNATURE_ID,
            "rev": 1,
            "signature": f"FLOWIDS attack flow (attack probability {probability:.3f})",
            "category": ALERT_CATEGORY,
            "severity": severity(probability),
        },
        "flow": {
            "pkts_toserver": int(row[_AT["total_fwd_packets"]]),
            "pkts_toclient": int(row[_AT["total_bwd_packets"]]),
            "bytes_toserver": int(row[_AT["total_fwd_bytes"]]),
            "bytes_toclient": int(row[_AT["total_bwd_bytes"]]),
            "start": eve_time(start),
            "end": eve_time(end),
        },
        "flowids": {
            "attack_probability": round(float(probability), 6),
            "threshold": threshold,
            "run_id": run_id,
            "flow_key": row[_AT["flow_id"]],
        },
    }


class _Outputs:
    """The alert file and the optional scored-flows CSV.

    Reading files, both are written to temporary files that replace the targets only when
    complete; in live mode they are written in place and flushed after every batch, so that
    other tools can follow them.
    """

    def __init__(self, output: Path, flows_out: Path | None, live: bool) -> None:
        self.targets = [p for p in (output, flows_out) if p is not None]
        self.live = live
        paths = self.targets if live else [self._tmp(p) for p in self.targets]
        self.paths = paths
        self.alerts = open(paths[0], "w", encoding="utf-8")  # noqa: SIM115
        self.flows = None
        if flows_out is not None:
            self.flows = open(paths[1], "w", encoding="utf-8", newline="")  # noqa: SIM115
            self.flow_writer = csv.writer(self.flows)
            self.flow_writer.writerow([*CIC_COLUMNS, "Attack Probability", "Verdict"])

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def write(self, rows, probability, alerts_lines: list[str], threshold: float) -> None:
        if alerts_lines:
            self.alerts.write("".join(alerts_lines))
        if self.flows is not None:
            self.flow_writer.writerows(
                [
                    *csv_cells(row),
                    round(float(p), 6),
                    "attack" if p >= threshold else "benign",
                ]
                for row, p in zip(rows, probability, strict=True)
            )
        if self.live:
            self.alerts.flush()
            if self.flows is not None:
                self.flows.flush()

    def close(self, success: bool) -> None:
        for handle in (self.alerts, self.flows):
            if handle is not None:
                handle.close()
        for path, target in zip(self.paths, self.targets, strict=True):
            if self.live:
                continue
            if success:
                os.replace(path, target)
            elif path.exists():
                path.unlink()


def detect(
    run: TrainedRun | Path | str,
    output: str | Path,
    pcaps=None,
    interface: str | None = None,
    flows_out: str | Path | None = None,
    settings: ExtractSettings | None = None,
    live_options: dict | None = None,
    allow_other_producer: bool = False,
    on_stats=None,
) -> DetectReport:
    """Score every flow of captures (or of a live interface) and write alerts as EVE JSON lines.

    Parameters
    ----------
    run : TrainedRun, or path of a run directory
    output : str or Path
        JSON lines, one EVE alert per flow whose attack probability is at or above the run's
        threshold.
    pcaps : iterable of str or Path, optional
        Capture files, directories or globs. Give either ``pcaps`` or ``interface``.
    interface : str, optional
        Network interface to capture from until SIGINT or ``live_options['duration_s']``.
    flows_out : str or Path, optional
        Also write every scored flow: the CIC-IDS2017 columns of ``flowids extract`` plus
        'Attack Probability' and 'Verdict'.
    settings : ExtractSettings, optional
        Flow timeouts.
    live_options : dict, optional
        ``duration_s``, ``stats_interval_s``, ``bpf_filter``, ``snapshot_length``.
    allow_other_producer : bool
        Score even if the run was trained on another producer's flows than CIC-IDS2017's.
    on_stats : callable, optional
        Called in live mode with counters: packets, flows, alerts, dropped, active flows.

    Returns
    -------
    DetectReport
    """
    if (pcaps is None) == (interface is None):
        raise UsageError("give capture files or --interface, not both and not neither")
    settings = settings or ExtractSettings()
    output = Path(output)
    flows_out = Path(flows_out) if flows_out is not None else None
    for path in (output, flows_out):
        if path is not None and not path.parent.exists():
            raise UsageError(f"{path}: directory {path.parent} does not exist")
    if interface is not None:
        _check_interface(interface)
    captures = None if pcaps is None else scan_captures(expand_captures(pcaps))

    reports: list[CaptureReport] = []
    started = time.perf_counter()
    counters = Counter()

    def live_stats(stats: dict) -> None:
        if on_stats is not None:
            on_stats({**stats, "alerts": counters["alerts"], "scored": counters["flows"]})

    if not isinstance(run, TrainedRun):
        from flowids.predict import load_trained_run

        run = load_trained_run(run)
    source = interface or ", ".join(str(c.path) for c in captures)
    run.preprocessor.check_dialects([CIC2017], source, allow_other_producer)
    report = DetectReport(run_id=run_id_of(run), threshold=run.threshold, captures=reports)
    outputs = _Outputs(output, flows_out, live=interface is not None)
    success = False
    batches = None
    try:
        if interface is not None:
            logger.info("capturing on %s (run %s loaded)", interface, report.run_id)
        # The reader starts here, after the model: with JAX loaded it is spawned, not forked.
        batches = stream_flows(
            captures,
            settings,
            interface=interface,
            live_options=live_options,
            on_report=reports.append,
            on_stats=live_stats,
        )
        pending: list[tuple] = []
        state = run.window_state()  # recent flows per key, for runs that score windows
        for rows in batches:
            pending.extend(rows)
            # Files: score in model-sized batches; live: as soon as flows arrive.
            if interface is not None or len(pending) >= SCORE_BATCH:
                _score_and_write(run, pending, source, report, outputs, counters, state)
                pending = []
        if pending:
            _score_and_write(run, pending, source, report, outputs, counters, state)
        if interface is None:
            for capture in reports:
                check_capture_report(capture)
        success = True
    finally:
        if batches is not None:
            batches.close()
        outputs.close(success)

    report.flows, report.alerts = counters["flows"], counters["alerts"]
    report.output, report.flows_output = output, flows_out
    report.seconds = time.perf_counter() - started
    logger.info(
        "scored %s flows in %.2f s: %s alert(s) at threshold %g; wrote %s",
        f"{report.flows:,}",
        report.seconds,
        f"{report.alerts:,}",
        run.threshold,
        output,
    )
    return report


def _score_and_write(run, rows, source, report, outputs, counters, state=None) -> None:
    probability = _score(run, rows, source, state)
    alerts = [
        json.dumps(eve_alert(row, p, report.run_id, run.threshold)) + "\n"
        for row, p in zip(rows, probability, strict=True)
        if p >= run.threshold
    ]
    outputs.write(rows, probability, alerts, run.threshold)
    counters["flows"] += len(rows)
    counters["alerts"] += len(alerts)


def _score(
    run: TrainedRun, rows: list[tuple], source: str, state: WindowState | None = None
) -> np.ndarray:
    frame = rows_to_frame(rows)
    features = frame[list(FEATURES)].astype(np.float64)
    if state is None:
        return run.score(features, source=source)
    # Each flow is scored as the last of its window: the flows of its key scored before it.
    keys = flow_keys(frame, state.settings.key)
    times = frame["start_us"].to_numpy(dtype=np.int64).astype("datetime64[us]")
    x = run.preprocessor.transform(features, source=source)
    return run.detector.attack_probability(state.push(keys, times, x))


def _check_interface(interface: str) -> None:
    from nfstream.engine import is_interface

    if is_interface(interface) is None:
        raise UsageError(
            f"--interface {interface!r}: no such network interface (see `ip link`); capturing "
            "also needs root or the CAP_NET_RAW capability"
        )
