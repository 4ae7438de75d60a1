# SPDX-License-Identifier: Apache-2.0
"""Tests of flow extraction from packet captures (flowids.features.packets)."""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest

from flowids.cli import main
from flowids.data.readers import read_flows
from flowids.data.schema import CIC2017, FEATURES
from flowids.features._cicflow import PacketLog, _features, _single_packet_features
from flowids.features.packets import CaptureError, ExtractSettings, extract_flows

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CAPTURES = sorted((SHARED / "data" / "pcap").iterdir()) + sorted((SHARED / "cases").glob("*.pcap"))


# --- building small captures by hand ----------------------------------------------------


def _checksum_free_ipv4(src: str, dst: str, protocol: int, payload: bytes) -> bytes:
    total = 20 + len(payload)
    return (
        struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            total,
            1,
            0,
            64,
            protocol,
            0,
            bytes(map(int, src.split("."))),
            bytes(map(int, dst.split("."))),
        )
        + payload
    )


def _tcp(sport: int, dport: int, flags: int, window: int, data: bytes = b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, window, 0, 0) + data


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data


def _ether(ip: bytes, ether_type: int = 0x0800, vlan: int | None = None) -> bytes:
    macs = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
    return macs + tag + struct.pack(">H", ether_type) + ip


def write_pcap(path: Path, frames: list[tuple[int, bytes]], link_type: int = 1) -> Path:
    """Write (timestamp in us, frame) records as a classic little-endian pcap."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link_type))
    for us, frame in frames:
        out += struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return path


T0 = 1_500_000_000_000_000  # 2017-07-14 02:40:00 UTC, in us
SYN, FIN, PSH, ACK = 0x02, 0x01, 0x08, 0x10


def _handshake_frames() -> list[tuple[int, bytes]]:
    """A short TCP connection: handshake, one request, one reply, FINs (times in us)."""
    c, s = "10.0.0.1", "10.0.0.2"

    def to_server(flags, window, data=b""):
        return _ether(_checksum_free_ipv4(c, s, 6, _tcp(1000, 80, flags, window, data)))

    def to_client(flags, window, data=b""):
        return _ether(_checksum_free_ipv4(s, c, 6, _tcp(80, 1000, flags, window, data)))

    return [
        (T0, to_server(SYN, 1000)),
        (T0 + 100, to_client(SYN | ACK, 2000)),
        (T0 + 300, to_server(ACK, 1001)),
        (T0 + 1300, to_server(PSH | ACK, 1002, b"x" * 10)),
        (T0 + 2300, to_client(ACK, 2001, b"y" * 20)),
        (T0 + 3300, to_server(FIN | ACK, 1003)),
        (T0 + 3400, to_client(FIN | ACK, 2002)),
    ]


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame


# --- every shared capture -----------------------------------------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    """Extract every shared capture once: {name: (report, output path)}."""
    out_dir = tmp_path_factory.mktemp("extracted")
    results = {}
    for capture in CAPTURES:
        output = out_dir / f"{capture.name}.csv"
        results[capture.name] = (extract_flows([capture], output), output)
    return results


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_capture_extracts_and_its_counts_add_up(extracted, capture):
    report, output = extracted[capture.name]
    (counts,) = report.captures

    assert counts.packets_read > 0
    assert counts.packets_read == counts.packets_in_flows + sum(counts.skipped.values())
    assert counts.flows == report.flows_written > 0
    table = read_flows([output])
    assert len(table) == report.flows_written
    assert table.reports[0].dialect == CIC2017
    assert list(table.features.columns) == list(FEATURES)
    assert table.labels is None


def test_shared_capture_packet_and_flow_counts(extracted):
    counts = {name: extracted[name][0].captures[0] for name in extracted}

    # PROVENANCE.md: 3,754 packets, 2 of them not IP; 150 connections, each cut in two by
    # the 120 s active timeout, as the Java tool did (300 flows in its output).
    slowloris = counts["kihy_slowloris.pcap"]
    assert (slowloris.packets_read, slowloris.flows) == (3754, 300)
    assert dict(slowloris.skipped) == {"not IP (ARP)": 2}
    # 10,000 UDP packets with 10,000 distinct source ports; 10,000 ICMP packets, one flow.
    assert counts["doup123_udp_flood.pcap"].flows == 10_000
    assert counts["doup123_icmp_blacknurse.pcap"].flows == 1
    assert counts["cicddos2019_synflood_lucid.pcap"].packets_read == 26_316
    assert counts["chrissanders_http_espn_benign.pcapng"].packets_read == 956


def test_portscan_gives_29_single_syn_flows(extracted):
    _, output = extracted["chrissanders_portscan.pcap"]
    flows = _read(output)

    assert len(flows) == 29
    assert set(flows["Source IP"]) == {"10.100.25.14"}
    assert set(flows["Destination IP"]) == {"10.100.18.12"}
    assert {21, 22, 23, 80, 135, 139, 445} <= set(flows["Destination Port"])
    assert (flows["Total Fwd Packets"] == 1).all()
    assert (flows["Total Backward Packets"] == 0).all()
    assert (flows["SYN Flag Count"] == 1).all()
    assert (flows["Flow Duration"] == 0).all()
    assert (flows["Init_Win_bytes_backward"] == -1).all()


def test_single_packet_flows_are_kept(extracted):
    # case BR-28a: four single-packet SYN flows
    report, output = extracted["BR-28a-single-packet-syn-flood.pcap"]
    flows = _read(output)

    assert report.flows_written == 4
    assert (flows["Total Fwd Packets"] == 1).all()
    assert set(flows["Flow Packets/s"].astype(str)) == {"inf"}


def test_late_udp_reply_is_its_own_flow(extracted):
    # case BR-27: a UDP query whose reply comes 300 s later
    report, output = extracted["BR-27-late-reply-udp.pcap"]
    flows = _read(output).sort_values("Timestamp")
    start = pd.to_datetime(flows["Timestamp"])

    assert (report.packets_read, report.flows_written) == (2, 2)
    assert (start.iloc[1] - start.iloc[0]).total_seconds() == pytest.approx(300, abs=1)
    assert flows["Destination Port"].iloc[0] == 53
    assert flows["Source Port"].iloc[1] == 53
    assert (flows["Init_Win_bytes_forward"] == -1).all()


def test_raw_ip_link_type_is_read(extracted):
    # case BR-28b: link type RAW (no Ethernet header)
    report, output = extracted["BR-28b-raw-ip-linktype.pcap"]
    flows = _read(output)

    assert report.captures[0].link_types == (101,)
    assert report.packets_read == 8
    assert report.flows_written == len(flows) == 2
    # One TCP connection to port 80; the client's FIN ends the first flow, so the server's
    # closing packets make a second one, as in CICFlowMeter.
    assert set(flows["Source Port"]) == {51000, 80}
    assert (flows["Total Fwd Packets"] + flows["Total Backward Packets"]).sum() == 8


# --- hand-made captures: values worked out by hand ---------------------------------------


def test_tcp_connection_features_by_hand(tmp_path):
    pcap = write_pcap(tmp_path / "conn.pcap", _handshake_frames())
    output = tmp_path / "flows.csv"

    extract_flows([pcap], output)
    flows = _read(output)

    # The first FIN ends the flow; the server's FIN starts a second, one-packet flow.
    assert len(flows) == 2
    flow = flows[flows["Source IP"] == "10.0.0.1"].iloc[0]
    assert flow["Timestamp"] == "2017-07-14 02:40:00.000000"
    assert flow["Flow Duration"] == 3300
    assert (flow["Total Fwd Packets"], flow["Total Backward Packets"]) == (4, 2)
    assert (flow["Total Length of Fwd Packets"], flow["Total Length of Bwd Packets"]) == (10, 20)
    # Gaps 100, 200, 1000, 1000, 1000 us: mean 660, sample std sqrt(872000 / 4).
    assert flow["Flow IAT Mean"] == pytest.approx(660)
    assert flow["Flow IAT Std"] == pytest.approx(math.sqrt(218_000))
    assert (flow["Flow IAT Max"], flow["Flow IAT Min"]) == (1000, 100)
    # Forward times 0, 300, 1300, 3300: gaps 300, 1000, 2000.
    assert flow["Fwd IAT Total"] == 3300
    assert flow["Fwd IAT Mean"] == pytest.approx(1100)
    assert flow["Fwd IAT Std"] == pytest.approx(math.sqrt(730_000))
    assert (flow["Bwd IAT Total"], flow["Bwd IAT Std"]) == (2200, 0)
    assert flow["Flow Bytes/s"] == pytest.approx(30 / 0.0033)
    assert flow["Flow Packets/s"] == pytest.approx(6 / 0.0033)
    # The first packet counts twice in the length statistics: 7 values summing to 30.
    assert flow["Packet Length Mean"] == pytest.approx(30 / 7)
    assert flow["Average Packet Size"] == pytest.approx(30 / 6)
    assert (flow["Fwd Header Length"], flow["Bwd Header Length"]) == (80, 40)
    assert (flow["Init_Win_bytes_forward"], flow["Init_Win_bytes_backward"]) == (1000, 2000)
    assert (flow["act_data_pkt_fwd"], flow["min_seg_size_forward"]) == (1, 20)
    assert (flow["SYN Flag Count"], flow["ACK Flag Count"]) == (2, 5)
    assert (flow["PSH Flag Count"], flow["FIN Flag Count"]) == (1, 1)
    assert (flow["Fwd PSH Flags"], flow["Down/Up Ratio"]) == (0, 0)
    assert (flow["Subflow Fwd Packets"], flow["Subflow Bwd Bytes"]) == (4, 20)


def test_without_fin_end_the_connection_is_one_flow(tmp_path):
    pcap = write_pcap(tmp_path / "conn.pcap", _handshake_frames())
    output = tmp_path / "flows.csv"

    extract_flows([pcap], output, ExtractSettings(end_on_fin=False))
    flows = _read(output)

    assert len(flows) == 1
    assert (flows["Total Fwd Packets"].iloc[0], flows["Total Backward Packets"].iloc[0]) == (4, 3)


def test_idle_periods_and_active_timeout(tmp_path):
    udp = [
        (T0 + offset, _ether(_checksum_free_ipv4("10.0.0.1", "10.0.0.2", 17, _udp(5, 53, b"q"))))
        for offset in (0, 1_000, 8_001_000, 8_002_000, 200_000_000)
    ]
    pcap = write_pcap(tmp_path / "udp.pcap", udp)
    output = tmp_path / "flows.csv"

    extract_flows([pcap], output)
    flows = _read(output).sort_values("Timestamp")

    # The packet 200 s after the first starts a new flow (active timeout 120 s).
    assert list(flows["Total Fwd Packets"]) == [4, 1]
    first = flows.iloc[0]
    # One gap over 5 s: idle 8,000,000 us after an active period of 1,000 us.
    assert (first["Idle Mean"], first["Idle Max"]) == (8_000_000, 8_000_000)
    assert (first["Active Mean"], first["Active Min"]) == (1_000, 1_000)


def test_vlan_and_ipv6_are_read(tmp_path):
    ipv6 = struct.pack(
        ">IHBB16s16s",
        6 << 28,
        20,
        6,
        64,
        b"\x20\x01" + b"\0" * 13 + b"\x01",
        b"\x20\x01" + b"\0" * 13 + b"\x02",
    ) + _tcp(4000, 443, SYN, 500)
    frames = [
        (T0, _ether(_checksum_free_ipv4("10.0.0.1", "10.0.0.2", 6, _tcp(1, 22, SYN, 7)), vlan=100)),
        (T0 + 10, _ether(ipv6, ether_type=0x86DD)),
        (T0 + 20, _ether(b"\x00" * 28, ether_type=0x0806)),
    ]
    pcap = write_pcap(tmp_path / "mixed.pcap", frames)
    output = tmp_path / "flows.csv"

    report = extract_flows([pcap], output)
    flows = _read(output)

    assert sorted(flows["Destination Port"]) == [22, 443]
    assert set(flows["Source IP"]) == {"10.0.0.1", "2001::1"}
    assert dict(report.captures[0].skipped) == {"not IP (ARP)": 1}


def test_unsupported_link_type_is_refused(tmp_path):
    frame = _checksum_free_ipv4("10.0.0.1", "10.0.0.2", 6, _tcp(1, 2, SYN, 1))
    pcap = write_pcap(tmp_path / "sll2.pcap", [(T0, b"\0" * 20 + frame)], link_type=276)

    with pytest.raises(CaptureError, match=r"link type 276 \(Linux cooked capture v2"):
        extract_flows([pcap], tmp_path / "flows.csv")
    assert not (tmp_path / "flows.csv").exists()


def test_a_file_that_is_no_capture_is_refused(tmp_path):
    text = tmp_path / "notes.pcap"
    text.write_text("hello, not a capture\n")

    with pytest.raises(CaptureError, match="neither a pcap nor a pcapng"):
        extract_flows([text], tmp_path / "flows.csv")


def test_packets_but_no_flow_is_an_error(tmp_path):
    arp = [(T0 + i, _ether(b"\x00" * 28, ether_type=0x0806)) for i in range(3)]
    pcap = write_pcap(tmp_path / "arp.pcap", arp)

    with pytest.raises(CaptureError, match=r"3 packets read but no flow .*3 not IP \(ARP\)"):
        extract_flows([pcap], tmp_path / "flows.csv")
    assert not (tmp_path / "flows.csv").exists()


def test_truncated_capture_reads_what_is_complete(tmp_path):
    data = (SHARED / "data" / "pcap" / "kihy_slowloris.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:100_000])

    report = extract_flows([cut], tmp_path / "flows.csv")
    (counts,) = report.captures

    assert counts.problem.startswith("last record cut short")
    assert counts.packets_read == counts.packets_in_flows + sum(counts.skipped.values())
    assert sum(n for why, n in counts.skipped.items() if why.startswith("damaged file")) == 1
    assert report.flows_written > 0


def test_empty_capture_writes_a_header_only(tmp_path):
    pcap = write_pcap(tmp_path / "empty.pcap", [])

    report = extract_flows([pcap], tmp_path / "flows.csv")

    assert (report.packets_read, report.flows_written) == (0, 0)
    assert _read(tmp_path / "flows.csv").empty


def test_single_packet_shortcut_equals_the_general_computation():
    for size, flags, window in [(0, SYN, 29200), (12, PSH | ACK, 5), (37, 0, -1)]:
        log = PacketLog()
        log.times.append(T0)
        log.sizes.append(size)
        log.codes.append(flags)
        log.header_fwd = log.min_header_fwd = 20
        log.window_fwd = window

        fast = _single_packet_features(log)
        general = _features(log, 5_000_000)

        assert len(fast) == len(general) == 76
        for a, b in zip(fast, general, strict=True):
            assert a == b or (math.isnan(a) and math.isnan(b))


def test_settings_refuse_bad_timeouts():
    with pytest.raises(ValueError, match="idle_timeout_s is 0"):
        ExtractSettings(idle_timeout_s=0)


def test_cli_extract_with_label(tmp_path, capsys):
    output = tmp_path / "flows.csv"
    pcap = SHARED / "data" / "pcap" / "chrissanders_portscan.pcap"

    status = main(["extract", str(pcap), "-o", str(output), "--label", "PortScan", "-q"])

    assert status == 0
    table = read_flows([output])
    assert set(table.labels) == {"PortScan"}
    out = capsys.readouterr().out
    assert "read 29 packets, 29 in 29 flows, skipped 0" in out


# --- parity with the Java CICFlowMeter ---------------------------------------------------


def _parity_module():
    name = "flowids_benchmarks_parity"
    if name not in sys.modules:
        path = REPO / "benchmarks" / "parity.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_parity_report_is_reproduced(extracted):
    parity = _parity_module()
    _, output = extracted["kihy_slowloris.pcap"]

    result = parity.compare(output)
    followed = [n for n in result.shares.index if n not in parity.DELIBERATE]

    assert (result.java_flows, result.flowids_flows, result.matched) == (300, 300, 300)
    assert result.clock_offset_s == -4 * 3600
    assert len(result.shares) == 76
    assert (result.shares[followed] == 1.0).all()
    full = int((result.shares >= 1.0).sum())
    doc = (REPO / "docs" / "parity.md").read_text(encoding="utf-8")
    assert f"**{full} of 76 features agree on every matched flow.**" in doc
    assert f"Over the {len(followed)} features where flowids follows the Java tool" in doc
    assert "| matched | 300 |" in doc
    assert parity.render(result) == doc
