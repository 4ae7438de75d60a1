# SPDX-License-Identifier: Apache-2.0
"""Compare the seed network on single flows (T = 1) with the same network on windows (T = 8).

    python benchmarks/compare_windows.py [--out FILE] [--runs-dir DIR] [--seeds 3]
                                         [--splits random time] [--threshold-rule RULE]
                                         [--epochs N]

Trains ``seed-20200924`` and ``windows-t8`` (and ``windows-t8`` keyed by source IP only) on
the same GeneratedLabelledFlows samples of Friday (DDoS, its benign file head, PortScan), with
the same split and seed, through the code of ``flowids train``, and prints one Markdown table
of test metrics read back from the run records, with how many related flows the test windows
held. ``--threshold-rule`` replaces the presets' fixed 0.5 (e.g. ``best-f1``, chosen on the
validation part). ``--epochs`` overrides the presets' 40 (for a quick look only; not a result).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

from flowids.data.readers import read_flows
from flowids.features.windows import WindowSettings, table_windows
from flowids.models.presets import resolve_config
from flowids.training import train_run

REPO = Path(__file__).resolve().parents[1]
GLF = REPO.parent / "shared" / "data" / "cicids2017"
DATA = [
    GLF / "friday_ddos_only_1000_glf.csv",
    GLF / "friday_ddos_file_head_299_glf.csv",
    GLF / "friday_portscan_only_1000_glf.csv",
]
SEED = 20200924

# (row name, preset, overrides)
VARIANTS = (
    ("T=1 (seed-20200924)", "seed-20200924", {}),
    ("T=8 src-dst-port (windows-t8)", "windows-t8", {}),
    ("T=8 src (windows-t8, key src)", "windows-t8", {"window_key": "src"}),
)
# Seeds per split: the time split has one order, so one seed varies only the network.
SPLIT_SEEDS = {"random": None, "time": 1}


def context(run_dir: Path, config) -> tuple[float, float]:
    """Mean real flows per test window, and the share of test flows scored alone."""
    settings = WindowSettings.from_config(config) or WindowSettings(1)
    table = read_flows([run_dir / "test_flows.csv.gz"])
    x = np.zeros((len(table), 1), dtype=np.float32)
    lengths = table_windows(table, x, settings).context_lengths()
    return float(lengths.mean()), float((lengths == 1).mean())


def row(name: str, split: str, run_dir: Path, config) -> dict:
    record = json.loads((run_dir / "run.json").read_text())
    test = record["metrics"]["test"]
    per_label = test["per_label"]
    mean_context, alone = context(run_dir, config)
    return {
        "variant": name,
        "split": split,
        "seed": config.seed,
        "threshold": record["decision"]["threshold"],
        "test flows": test["n_flows"],
        "TN FP FN TP": f"{test['tn']} {test['fp']} {test['fn']} {test['tp']}",
        "precision": test["precision"],
        "recall": test["recall"],
        "f1": test["f1"],
        "fpr": test["false_positive_rate"],
        "roc_auc": test["roc_auc"],
        "DDoS recall": per_label.get("DDoS", {}).get("recall"),
        "PortScan recall": per_label.get("PortScan", {}).get("recall"),
        "flows per window": mean_context,
        "scored alone": alone,
        "train s": record["training"]["seconds"],
    }


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for entry in rows:
        cells = []
        for column in columns:
            value = entry[column]
            if value is None:
                cells.append("n/a")
            elif isinstance(value, float):
                cells.append(f"{value:.1f}" if column == "train s" else f"{value:.4f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: temporary)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the random split")
    parser.add_argument("--splits", nargs="+", default=list(SPLIT_SEEDS), choices=list(SPLIT_SEEDS))
    parser.add_argument("--threshold-rule", help="override the presets' threshold rule")
    parser.add_argument("--epochs", type=int, help="override the presets' epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="flowids-windows-"))
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    for split in args.splits:
        for seed in range(SEED, SEED + (SPLIT_SEEDS[split] or args.seeds)):
            for name, preset, overrides in VARIANTS:
                settings = {
                    **overrides,
                    "split": split,
                    "seed": seed,
                    "epochs": args.epochs,
                    "threshold_rule": args.threshold_rule,
                }
                config = resolve_config(preset, overrides=settings)
                run_dir = train_run([str(p) for p in DATA], config, runs_dir, preset, None, False)
                rows.append(row(name, split, run_dir, config))
                print(f"{name}, {split}, seed {seed}: {run_dir}", file=sys.stderr)

    table = markdown(rows)
    print(table)
    print(
        f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; data: {', '.join(p.name for p in DATA)}; runs in {runs_dir}"
    )
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
