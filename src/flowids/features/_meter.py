# SPDX-License-Identifier: Apache-2.0
"""The metering process: NFStream's capture engine and flow cache, driven packet by packet.

It runs in a child process (one core reads packets and keeps flows, the parent writes or
scores them) and sends finished flow rows through a pipe in batches. Reading a file, it walks
the file's records in step with NFStream, so that each packet gets its microsecond capture
time and each packet NFStream ignores gets a reason.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass

from nfstream.engine import activate_capture, create_engine, setup_capture
from nfstream.meter import NFCache, consume, meter_cleanup, meter_scan
from nfstream.utils import NFMode

from flowids.features._cicflow import CicFeaturePlugin
from flowids.features._pcapfile import iter_records, skip_reason

logger = logging.getLogger(__name__)

# capture_next results (NFStream engine).
_PROCESSED, _IGNORED, _READ_ERROR, _END = 1, 0, -1, -2
_SCAN_EVERY_MS = 10  # idle-flow scan interval in capture time, as NFStream's own loop
_BATCH_ROWS = 128  # about 45 kB pickled, under a pipe buffer: the reader rarely waits
_LIVE_FLUSH_S = 0.2


@dataclass(frozen=True)
class MeterSettings:
    """Timeouts and limits of the metering loop (see ``ExtractSettings`` for meanings)."""

    active_timeout_ms: int
    idle_timeout_ms: int
    activity_timeout_us: int
    end_on_fin: bool
    max_active_flows: int
    snapshot_length: int = 1536
    bpf_filter: str | None = None
    stats_interval_s: float = 5.0
    duration_s: float | None = None


class _Sink:
    """Collects expired flows' rows and sends them to the parent in batches."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.rows: list[tuple] = []
        self.flows = 0

    def put(self, flow) -> None:
        self.rows.append(flow.udps.row)
        self.flows += 1
        if len(self.rows) >= _BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.conn.send(("rows", self.rows))
            self.rows = []


class _Engine:
    """NFStream's engine objects for one capture, and the calls the loop makes on them."""

    def __init__(self, source: str, mode: NFMode, settings: MeterSettings, group_id: int = 0):
        self.ffi, self.lib = create_engine()
        self.mode = mode
        error = self.ffi.new("char[256]")
        self.capture = setup_capture(
            self.ffi, self.lib, source, settings.snapshot_length, True, mode, error, group_id, 0
        )
        if self.capture is None or not activate_capture(
            self.capture, self.lib, error, settings.bpf_filter, mode
        ):
            message = self.ffi.string(error).decode("utf-8", errors="replace")
            raise OSError(f"{source}: NFStream cannot open the capture ({message})")
        self.plugin = CicFeaturePlugin(settings.end_on_fin, settings.activity_timeout_us)
        self.udps = (self.plugin,)
        self.cache = NFCache()
        self.settings = settings
        self.packet = self.ffi.new("struct nf_packet *")
        self.evicted = 0

    def next(self) -> int:
        return self.lib.capture_next(self.capture, self.packet, 0, 1, 0, int(self.mode))

    def consume(self, sink: _Sink) -> None:
        s = self.settings
        consume(
            self.packet,
            self.cache,
            s.active_timeout_ms,
            s.idle_timeout_ms,
            sink,
            self.ffi,
            self.lib,
            self.udps,
            True,
            3,
            0,
            False,
            0,
            self.ffi.NULL,
            False,
            0,
        )
        while len(self.cache) > s.max_active_flows:
            self._expire(self.cache.get_lru_key(), sink)
            self.evicted += 1

    def scan(self, tick_ms: int, sink: _Sink) -> None:
        while (
            meter_scan(
                tick_ms,
                self.cache,
                self.settings.idle_timeout_ms,
                sink,
                self.udps,
                True,
                0,
                False,
                0,
                self.ffi,
                self.lib,
                self.ffi.NULL,
            )
            >= 1000
        ):
            continue

    def flush_all(self, sink: _Sink) -> None:
        meter_cleanup(
            self.cache, sink, self.udps, True, 0, False, 0, self.ffi, self.lib, self.ffi.NULL
        )

    def _expire(self, key, sink: _Sink) -> None:
        flow = self.cache[key]
        sink.put(flow.expire(self.udps, True, 0, False, 0, self.ffi, self.lib, self.ffi.NULL))
        del self.cache[key]

    def dropped(self) -> int:
        stats = self.ffi.new("struct nf_stat *")
        self.lib.capture_stats(self.capture, stats, int(self.mode))
        return int(stats.dropped) + int(stats.dropped_by_interface)

    def close(self) -> None:
        self.lib.capture_close(self.capture)


def meter_file(path: str, display: str, settings: MeterSettings, conn) -> None:
    """Turn one capture file into flows; send its rows, then a ``source_done`` report."""
    engine = _Engine(path, NFMode.SINGLE_FILE, settings)
    sink = _Sink(conn)
    plugin, packet = engine.plugin, engine.packet
    records = iter_records(path)
    skipped: Counter = Counter()
    read = processed = reordered = clock_mismatch = 0
    tick = scan_tick = last_us = 0
    in_step = True

    while True:
        result = engine.next()
        if result == _END:
            break
        read += 1
        if result == _READ_ERROR:
            # Limitation: after a read error the file walk may be out of step with NFStream,
            # so later packets fall back to NFStream's millisecond times (#5).
            skipped["unreadable record"] += 1
            in_step = False
            continue
        record = next(records, None) if in_step else None
        in_step = record is not None
        if result == _IGNORED:
            skipped[skip_reason(record[1], record[2]) if record else "ignored by NFStream"] += 1
            continue
        if result != _PROCESSED:
            continue

        ms = packet.time
        if ms > tick:
            tick = ms
        else:
            packet.time = tick
        us = record[0] if record else ms * 1000
        if record and us // 1000 != ms:
            clock_mismatch += 1
        if us < last_us:
            us = last_us
            reordered += 1
        last_us = plugin.now_us = us
        engine.consume(sink)
        processed += 1
        if tick - scan_tick >= _SCAN_EVERY_MS:
            engine.scan(tick, sink)
            scan_tick = tick

    engine.close()
    engine.flush_all(sink)
    sink.flush()
    conn.send(
        (
            "source_done",
            {
                "source": display,
                "packets_read": read,
                "packets_in_flows": processed,
                "skipped": dict(skipped),
                "flows": sink.flows,
                "out_of_order": reordered,
                "evicted_flows": engine.evicted,
                "clock_mismatches": clock_mismatch,
            },
        )
    )


def meter_interface(interface: str, settings: MeterSettings, conn, stop: threading.Event) -> None:
    """Capture live until ``stop`` is set or the duration ends; flush every flow on the way out.

    A reader thread blocks in NFStream's capture call; this thread expires idle flows by the
    wall clock, sends rows and counters, and on stop expires every flow still in the cache.
    """
    engine = _Engine(interface, NFMode.INTERFACE, settings, group_id=0)
    sink = _Sink(conn)
    lock = threading.Lock()
    counts = {"packets": 0, "ignored": 0}

    def read_packets() -> None:
        packet, plugin = engine.packet, engine.plugin
        tick = 0
        while True:
            result = engine.next()
            if result not in (_PROCESSED, _IGNORED):
                continue
            with lock:
                if result == _IGNORED:
                    counts["ignored"] += 1
                    continue
                ms = packet.time
                if ms > tick:
                    tick = ms
                else:
                    packet.time = tick
                # Limitation: live packets carry NFStream's millisecond times (#5).
                plugin.now_us = tick * 1000
                engine.consume(sink)
                counts["packets"] += 1

    threading.Thread(target=read_packets, name="flowids-capture", daemon=True).start()
    started = last_stats = time.monotonic()
    while not stop.wait(_LIVE_FLUSH_S):
        now = time.monotonic()
        if settings.duration_s is not None and now - started >= settings.duration_s:
            break
        with lock:
            engine.scan(int(time.time() * 1000), sink)
            sink.flush()
            if now - last_stats >= settings.stats_interval_s:
                conn.send(("stats", _live_stats(engine, sink, counts)))
                last_stats = now

    with lock:
        engine.flush_all(sink)
        sink.flush()
        conn.send(("stats", _live_stats(engine, sink, counts)))
        conn.send(("source_done", {"source": interface, **_live_stats(engine, sink, counts)}))


def _live_stats(engine: _Engine, sink: _Sink, counts: dict) -> dict:
    return {
        "packets_in_flows": counts["packets"],
        "packets_read": counts["packets"] + counts["ignored"],
        "skipped": {"ignored by NFStream (not IP, or not decodable)": counts["ignored"]},
        "flows": sink.flows,
        "active_flows": len(engine.cache),
        "dropped": engine.dropped(),
        "evicted_flows": engine.evicted,
    }


def worker(conn, jobs: list[tuple[str, str]], settings: MeterSettings, live: bool, stop) -> None:
    """Child-process entry: meter each ``(path, display name)`` job, or one interface."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Objects inherited from the parent never die here; keeping them out of the collector's
    # scans saves a large share of the time spent on many short flows.
    gc.freeze()
    try:
        if live:
            meter_interface(jobs[0][0], settings, conn, stop)
        else:
            for path, display in jobs:
                meter_file(path, display, settings, conn)
        conn.send(("done", None))
    except Exception as exc:  # reported to the parent, which raises a FlowidsError
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
