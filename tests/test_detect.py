# SPDX-License-Identifier: Apache-2.0
"""Tests of detection from captures and from a live interface (flowids.detect)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from flowids.cli import main
from flowids.detect import detect, eve_alert, severity

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PCAPS = SHARED / "data" / "pcap"
EVE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A tiny trained run, and a copy whose threshold is 0.

    Two epochs on 1,000 Wednesday flows give attack probabilities in a narrow band, and at
    the run's own threshold (0.5) such a model calls nothing an attack. The copy with
    threshold 0 turns every scored flow into an alert, so the tests can check the alert
    pipeline and its EVE shape on every flow; the model's quality is not under test here.
    """
    runs_dir = tmp_path_factory.mktemp("runs")
    data = SHARED / "data" / "cicids2017" / "wednesday_random_sample_1k_mlcve.csv"
    status = main(
        ["train", "--data", str(data), "--epochs", "2", "--runs-dir", str(runs_dir), "-q"]
    )
    assert status == 0
    (trained,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    every_flow = runs_dir / "threshold-zero"
    shutil.copytree(trained, every_flow)
    decision = json.loads((every_flow / "decision.json").read_text())
    decision["threshold"] = 0.0
    (every_flow / "decision.json").write_text(json.dumps(decision))
    return {"trained": trained, "every_flow": every_flow, "runs_dir": runs_dir}


def check_eve_alert(event: dict, run_id: str) -> None:
    """Assert the Suricata EVE alert shape of one event."""
    assert event["event_type"] == "alert"
    assert EVE_TIME.match(event["timestamp"])
    assert isinstance(event["flow_id"], int) and 0 <= event["flow_id"] < 2**63
    assert isinstance(event["src_ip"], str) and isinstance(event["dest_ip"], str)
    assert isinstance(event["src_port"], int) and isinstance(event["dest_port"], int)
    assert event["proto"] in {"TCP", "UDP", "ICMP", "IPv6-ICMP"}
    alert = event["alert"]
    assert {"action", "gid", "signature_id", "rev", "signature", "category", "severity"} <= set(
        alert
    )
    assert alert["severity"] in (1, 2, 3)
    assert alert["signature"].startswith("FLOWIDS attack flow")
    assert EVE_TIME.match(event["flow"]["start"]) and EVE_TIME.match(event["flow"]["end"])
    assert event["flowids"]["run_id"] == run_id
    assert 0.0 <= event["flowids"]["attack_probability"] <= 1.0


def test_attack_capture_raises_eve_alerts(runs, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    flows_out = tmp_path / "flows.csv"
    pcaps = [PCAPS / "chrissanders_portscan.pcap", PCAPS / "chrissanders_dosattack.pcap"]

    report = detect(runs["every_flow"], alerts, pcaps=pcaps, flows_out=flows_out)
    events = [json.loads(line) for line in alerts.read_text().splitlines()]
    scored = pd.read_csv(flows_out)

    assert report.flows == 129 == len(scored)  # 29 port-scan SYNs, 100 spoofed SYNs
    assert report.alerts == len(events) == 129
    for event in events:
        check_eve_alert(event, runs["trained"].name)
    assert {e["dest_ip"] for e in events} >= {"10.100.18.12"}
    assert set(scored["Verdict"]) == {"attack"}


def test_alerts_are_the_flows_at_or_above_the_threshold(runs, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    flows_out = tmp_path / "flows.csv"

    report = detect(
        runs["trained"], alerts, pcaps=[PCAPS / "kihy_slowloris.pcap"], flows_out=flows_out
    )
    scored = pd.read_csv(flows_out)
    threshold = report.threshold

    assert report.flows == 300
    assert report.alerts == int((scored["Attack Probability"] >= threshold).sum())
    assert len(alerts.read_text().splitlines()) == report.alerts
    assert set(scored["Verdict"]) <= {"attack", "benign"}


def test_cli_detect_on_shared_captures(runs, tmp_path, capsys):
    alerts = tmp_path / "alerts.jsonl"

    status = main(
        [
            "detect",
            "--run",
            "threshold-zero",
            "--runs-dir",
            str(runs["runs_dir"]),
            str(PCAPS / "chrissanders_portscan.pcap"),
            "-o",
            str(alerts),
            "-q",
        ]
    )

    assert status == 0
    assert "total: 29 flows scored, 29 alerts" in capsys.readouterr().out
    assert len(alerts.read_text().splitlines()) == 29


def test_cli_detect_needs_one_source(runs, tmp_path, capsys):
    status = main(["detect", "--run", str(runs["trained"]), "-o", str(tmp_path / "a.jsonl")])

    assert status == 2
    assert "give capture files or --interface" in capsys.readouterr().err


def test_unknown_interface_is_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="no such network interface"):
        detect(runs["trained"], tmp_path / "a.jsonl", interface="no-such-if0")


def test_eve_alert_of_a_row():
    row = ("1.2.3.4-5.6.7.8-1000-80-6", "1.2.3.4", 1000, "5.6.7.8", 80, 6, 1_500_000_000_000_000)
    row = row + (2500, 3, 2, 10, 20) + (0,) * 71

    event = eve_alert(row, 0.95, "run-1", 0.5)

    check_eve_alert(event, "run-1")
    assert event["timestamp"] == "2017-07-14T02:40:00.000000+0000"
    assert event["flow"]["end"] == "2017-07-14T02:40:00.002500+0000"
    assert (event["flow"]["pkts_toserver"], event["flow"]["bytes_toclient"]) == (3, 20)
    assert (severity(0.95), severity(0.8), severity(0.5)) == (1, 2, 3)


def _can_capture_on_loopback() -> bool:
    from nfstream.engine import is_interface

    return hasattr(os, "geteuid") and os.geteuid() == 0 and is_interface("lo") is not None


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)

    def serve() -> None:
        for _ in range(5):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(64))

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.skipif(not _can_capture_on_loopback(), reason="capturing on lo needs root")
def test_live_detection_on_loopback(runs, tmp_path):
    alerts = tmp_path / "live.jsonl"
    flows_out = tmp_path / "live.csv"
    command = [
        sys.executable,
        "-m",
        "flowids.cli",
        "detect",
        "--run",
        str(runs["every_flow"]),
        "--interface",
        "lo",
        "--idle-timeout",
        "1",
        "--stats-interval",
        "0.5",
        "--duration",
        "60",
        "-o",
        str(alerts),
        "--flows-out",
        str(flows_out),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Counter lines on stderr show that the capture runs and the run is loaded.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if line.startswith("packets ") or not line:
                break
        assert line.startswith("packets "), line

        server, port = _echo_server()
        with server:
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                    client.sendall(b"hello")
                    assert client.recv(64) == b"hello"
        time.sleep(3)  # idle timeout 1 s: the flows leave the cache and are scored
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, err
    flows = pd.read_csv(flows_out)
    ours = flows[(flows["Destination Port"] == port) | (flows["Source Port"] == port)]
    # Each connection gives two flows: up to the client's FIN, then the closing packets.
    assert len(ours) >= 5
    assert ours["Destination Port"].eq(port).sum() >= 5
    events = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(events) == len(flows)
    for event in events:
        check_eve_alert(event, runs["trained"].name)
    assert "lo: read" in out
    assert re.search(r"packets \d+ \| flows \d+ \(active \d+\) \| alerts \d+ \| dropped 0", err)
