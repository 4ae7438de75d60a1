# SPDX-License-Identifier: Apache-2.0
"""Check capture files before NFStream reads them, and walk their packet records in step with it.

NFStream reports packet times in whole milliseconds; this module reads each record's own
timestamp in microseconds, finds the readable part of truncated or damaged files, refuses
link types NFStream cannot decode, and says why a packet that NFStream ignored was skipped.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flowids.errors import DataError

logger = logging.getLogger(__name__)


class CaptureError(DataError):
    """A capture cannot be read: not a pcap or pcapng file, or a link type flowids refuses."""


# Link types whose frames NFStream decodes, with the names used in messages.
LINK_TYPES = {
    1: "Ethernet",
    101: "raw IP",
    12: "raw IP",
    14: "raw IP",
    228: "raw IPv4",
    229: "raw IPv6",
    113: "Linux cooked capture (SLL)",
}
_KNOWN_OTHER_LINK_TYPES = {
    0: "BSD loopback (NULL)",
    9: "PPP",
    105: "IEEE 802.11",
    108: "OpenBSD loopback",
    127: "IEEE 802.11 radiotap",
    276: "Linux cooked capture v2 (SLL2)",
}
SUPPORTED_LINK_TYPES_TEXT = (
    "Ethernet (1), raw IP (101, 12, 14, 228, 229), Linux cooked capture (113)"
)

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1),  # microseconds, little endian
    b"\xa1\xb2\xc3\xd4": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1000),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1000),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_IDB, _PCAPNG_SPB, _PCAPNG_OPB, _PCAPNG_EPB = 1, 3, 2, 6
# libpcap refuses records larger than this (or than the snapshot length, if larger).
_MAX_RECORD = 262_144


@dataclass
class CaptureFile:
    """What a scan of one capture file found.

    Attributes
    ----------
    format : str
        'pcap' or 'pcapng'.
    link_types : tuple of int
        Link types of the file (one for pcap; one per interface for pcapng).
    records : int
        Complete packet records in the readable part.
    readable_bytes : int
        Length of the readable prefix; equal to ``size`` for a sound file.
    problem : str or None
        Why reading stops before the end of the file (a truncated last record, a damaged
        record header), or None.
    """

    path: Path
    format: str
    size: int
    link_types: tuple[int, ...] = ()
    records: int = 0
    readable_bytes: int = 0
    problem: str | None = None
    skipped: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.readable_bytes == self.size


def _link_type_name(link_type: int) -> str:
    name = LINK_TYPES.get(link_type) or _KNOWN_OTHER_LINK_TYPES.get(link_type)
    return f"{link_type} ({name})" if name else str(link_type)


def scan_capture(path: str | Path) -> CaptureFile:
    """Read the record structure of a pcap or pcapng file without decoding packets.

    Raises
    ------
    CaptureError
        If the file is not a pcap or pcapng file, or a link type is not one NFStream
        decodes.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 4:
        raise CaptureError(
            f"{path}: {size} byte(s), too short for a capture file header; expected a pcap or "
            "pcapng file"
        )
    if head in _PCAP_MAGIC:
        capture = _scan_pcap(path, size)
    elif struct.unpack("<I", head)[0] == _PCAPNG_SHB:
        capture = _scan_pcapng(path, size)
    else:
        raise CaptureError(
            f"{path}: starts with bytes {head.hex()}, which is neither a pcap nor a pcapng "
            "magic number; expected a packet capture written by tcpdump, Wireshark or dumpcap"
        )

    refused = [lt for lt in capture.link_types if lt not in LINK_TYPES]
    if refused:
        raise CaptureError(
            f"{path}: link type {', '.join(_link_type_name(lt) for lt in refused)} is not "
            f"supported; flowids reads {SUPPORTED_LINK_TYPES_TEXT}. Capture on an Ethernet "
            "interface, or convert the file (e.g. `editcap -T ether`) where the frames allow it"
        )
    return capture


def _scan_pcap(path: Path, size: int) -> CaptureFile:
    capture = CaptureFile(path=path, format="pcap", size=size)
    with open(path, "rb") as handle:
        header = handle.read(24)
        if len(header) < 24:
            capture.problem = f"file header cut short ({len(header)} of 24 bytes)"
            capture.readable_bytes = len(header)
            return capture
        endian, _ = _PCAP_MAGIC[header[:4]]
        snaplen, link_type = struct.unpack(endian + "II", header[16:24])
        capture.link_types = (link_type & 0x0FFFFFFF,)
        limit = max(snaplen, _MAX_RECORD)
        if size == 24:
            capture.readable_bytes = 24
            return capture
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            capture.records, capture.readable_bytes, capture.problem = _walk_pcap(
                data, endian, limit
            )
    return capture


def _walk_pcap(data, endian: str, limit: int) -> tuple[int, int, str | None]:
    record = struct.Struct(endian + "IIII")
    size = len(data)
    offset, count = 24, 0
    while offset < size:
        if offset + 16 > size:
            return count, offset, f"last record header cut short at byte {offset:,}"
        _, _, caplen, _ = record.unpack_from(data, offset)
        if caplen > limit:
            return (
                count,
                offset,
                (
                    f"damaged record header at byte {offset:,} (captured length {caplen:,}); "
                    f"the remaining {size - offset:,} bytes were not read"
                ),
            )
        if offset + 16 + caplen > size:
            return (
                count,
                offset,
                (
                    f"last record cut short at byte {offset:,} ({size - offset - 16:,} of "
                    f"{caplen:,} bytes)"
                ),
            )
        offset += 16 + caplen
        count += 1
    return count, offset, None


def _scan_pcapng(path: Path, size: int) -> CaptureFile:
    capture = CaptureFile(path=path, format="pcapng", size=size)
    link_types: list[int] = []
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for kind, _, body, endian in _walk_pcapng_blocks(data, capture):
            if kind == _PCAPNG_IDB:
                link_types.append(struct.unpack_from(endian + "H", body, 0)[0])
            elif kind in (_PCAPNG_EPB, _PCAPNG_SPB, _PCAPNG_OPB):
                capture.records += 1
    capture.link_types = tuple(dict.fromkeys(link_types))
    return capture


def _walk_pcapng_blocks(data, capture: CaptureFile) -> Iterator[tuple[int, int, bytes, str]]:
    """Yield (block type, offset, body, byte order) of each complete block; note damage."""
    size = len(data)
    offset, endian = 0, "<"
    while offset < size:
        if offset + 12 > size:
            capture.problem = f"last block cut short at byte {offset:,}"
            break
        kind = struct.unpack_from("<I", data, offset)[0]
        if kind == _PCAPNG_SHB:
            magic = bytes(data[offset + 8 : offset + 12])
            endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
        length = struct.unpack_from(endian + "I", data, offset + 4)[0]
        kind = struct.unpack_from(endian + "I", data, offset)[0]
        if length < 12 or length % 4 or length > max(_MAX_RECORD * 2, 1 << 20):
            capture.problem = (
                f"damaged block header at byte {offset:,} (length {length:,}); the remaining "
                f"{size - offset:,} bytes were not read"
            )
            break
        if offset + length > size:
            capture.problem = (
                f"last block cut short at byte {offset:,} ({size - offset:,} of {length:,} bytes)"
            )
            break
        yield kind, offset, bytes(data[offset + 8 : offset + length - 4]), endian
        offset += length
    capture.readable_bytes = offset


def readable_copy(capture: CaptureFile, directory: str | Path) -> Path:
    """Write the readable prefix of a damaged capture to ``directory`` and return its path."""
    target = Path(directory) / f"readable-{os.getpid()}-{capture.path.name}"
    with open(capture.path, "rb") as source, open(target, "wb") as out:
        remaining = capture.readable_bytes
        while remaining > 0:
            block = source.read(min(remaining, 1 << 20))
            if not block:
                break
            out.write(block)
            remaining -= len(block)
    return target


def iter_records(path: str | Path) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(timestamp_us, link_type, frame)`` for every complete packet record, in order.

    Reading stops at the first damaged or incomplete record, as :func:`scan_capture` does.
    pcapng timestamps are converted from each interface's resolution to microseconds.
    """
    with open(path, "rb", buffering=1 << 16) as handle:
        magic = handle.read(4)
        if magic in _PCAP_MAGIC:
            yield from _pcap_records(handle, magic)
        elif len(magic) == 4:
            handle.seek(0)
            yield from _pcapng_records(handle)


def _pcap_records(handle, magic: bytes) -> Iterator[tuple[int, int, bytes]]:
    endian, per_us = _PCAP_MAGIC[magic]
    header = handle.read(20)
    if len(header) < 20:
        return
    snaplen, link_type = struct.unpack_from(endian + "II", header, 12)
    link_type &= 0x0FFFFFFF
    limit = max(snaplen, _MAX_RECORD)
    record = struct.Struct(endian + "IIII")
    read = handle.read
    while True:
        head = read(16)
        if len(head) < 16:
            return
        seconds, fraction, caplen, _ = record.unpack(head)
        if caplen > limit:
            return
        frame = read(caplen)
        if len(frame) < caplen:
            return
        yield seconds * 1_000_000 + fraction // per_us, link_type, frame


def _pcapng_records(handle) -> Iterator[tuple[int, int, bytes]]:
    interfaces: list[tuple[int, int]] = []  # (link type, timestamp units per second)
    endian = "<"
    while True:
        head = handle.read(12)
        if len(head) < 12:
            return
        if struct.unpack_from("<I", head)[0] == _PCAPNG_SHB:
            endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        kind, length = struct.unpack_from(endian + "II", head)
        if length < 12 or length % 4 or length > max(_MAX_RECORD * 2, 1 << 20):
            return
        body = head[8:] + handle.read(length - 12)
        if len(body) < length - 8:
            return
        body = body[:-4]
        if kind == _PCAPNG_IDB:
            link_type = struct.unpack_from(endian + "H", body, 0)[0]
            interfaces.append((link_type, _if_tsresol(body, endian)))
        elif kind == _PCAPNG_EPB:
            interface, high, low, caplen = struct.unpack_from(endian + "IIII", body, 0)
            link_type, units = interfaces[interface] if interface < len(interfaces) else (1, 10**6)
            ticks = (high << 32) | low
            yield ticks * 1_000_000 // units, link_type, body[20 : 20 + caplen]
        elif kind in (_PCAPNG_SPB, _PCAPNG_OPB):
            link_type = interfaces[0][0] if interfaces else 1
            yield 0, link_type, body[4:] if kind == _PCAPNG_SPB else body[16:]


def _if_tsresol(body: bytes, endian: str) -> int:
    """Units per second of an interface's timestamps (option if_tsresol, default 10**6)."""
    offset = 8
    while offset + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, offset)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = body[offset + 4]
            units = 2 ** (value & 0x7F) if value & 0x80 else 10**value
            return units
        offset += 4 + length + (-length % 4)
    return 10**6


_ETHERTYPE_NAMES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x888E: "EAPOL", 0x8863: "PPPoE"}


def skip_reason(link_type: int, frame: bytes) -> str:
    """Why NFStream would not make a flow of this frame, in a few words (a report key)."""
    offset, ether_type = _network_offset(link_type, frame)
    if ether_type is None:
        return "frame too short for its link-layer header"
    if ether_type not in (0x0800, 0x86DD):
        if ether_type < 0x0600:
            return "not IP (IEEE 802.3 length field, e.g. spanning tree)"
        name = _ETHERTYPE_NAMES.get(ether_type, f"EtherType 0x{ether_type:04x}")
        return f"not IP ({name})"
    ip = frame[offset:]
    if len(ip) < 20:
        return "IP header cut short"
    version = ip[0] >> 4
    if version == 4:
        if (ip[0] & 0x0F) < 5:
            return "malformed IPv4 header"
        if (ip[6] & 0x1F) or ip[7]:
            return "IPv4 fragment after the first"
        return "IPv4 packet NFStream could not decode"
    if version == 6:
        return "IPv6 packet NFStream could not decode"
    return f"IP version {version} is neither 4 nor 6"


def _network_offset(link_type: int, frame: bytes) -> tuple[int, int | None]:
    """Offset of the network header and its EtherType (0x0800 for raw IPv4, ...)."""
    if link_type in (101, 12, 14, 228, 229):
        if not len(frame):
            return 0, None
        return 0, 0x0800 if frame[0] >> 4 == 4 else 0x86DD if frame[0] >> 4 == 6 else 0
    if link_type == 113:
        if len(frame) < 16:
            return 0, None
        return 16, int.from_bytes(frame[14:16], "big")
    offset = 12
    while True:
        if len(frame) < offset + 2:
            return 0, None
        ether_type = int.from_bytes(frame[offset : offset + 2], "big")
        if ether_type in (0x8100, 0x88A8, 0x9100):
            offset += 4
            continue
        return offset + 2, ether_type
