# SPDX-License-Identifier: Apache-2.0
"""Measure how many flows per second the default network trains on and scores on this machine.

Run ``python benchmarks/bench_model.py [--flows N] [--epochs N]``; the
README beside this file says what each printed line means.
"""

from __future__ import annotations

import os

# Keras reads its backend at import: JAX unless the caller chose another.
os.environ.setdefault("KERAS_BACKEND", "jax")

import argparse
import importlib.metadata
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np

from flowids.errors import FlowidsError
from flowids.models.bilstm import build_bilstm, count_params, seed_everything, to_model_input
from flowids.models.presets import DEFAULT_PRESET, resolve_config

SAMPLE = Path("data/cicids2017/all_days_random_sample_12k_mlcve.csv.gz")
SYNTHETIC_FEATURES = 77
PREDICT_BATCH = 4096
PREDICT_REPEATS = 3


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _real_flows(n_flows: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Read, preprocess and repeat the shared sample up to `n_flows` flows."""
    try:
        from flowids.data import read_flows
    except ImportError:
        from flowids.data.readers import read_flows
    from flowids.data.labels import is_attack
    from flowids.features.preprocessing import Preprocessor

    path = Path(__file__).resolve().parents[1].parent / "shared" / SAMPLE
    table = read_flows([path])
    features = Preprocessor().fit(table.features).transform(table.features)
    attack = is_attack(table.labels).astype(int)

    order = np.random.default_rng(seed).integers(0, len(features), size=n_flows)
    source = f"{len(features):,} real flows of {path.name}, drawn with replacement"
    return features[order], attack[order], source


def _synthetic_flows(n_flows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_flows, SYNTHETIC_FEATURES), dtype=np.float32)
    return features, rng.integers(0, 2, size=n_flows)


def _flows(n_flows: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        return _real_flows(n_flows, seed)
    except (ImportError, OSError, ValueError, FlowidsError) as exc:
        features, attack = _synthetic_flows(n_flows, seed)
        source = (
            f"standard-normal float32 values, {SYNTHETIC_FEATURES} features "
            f"(no real flows: {type(exc).__name__}: {exc}); throughput does not depend on values"
        )
        return features, attack, source


def _versions() -> str:
    names = ("keras", "jax", "jaxlib", "numpy", "flowids")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return f"python {platform.python_version()}, " + ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=50_000, help="flows to fit and score")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, the first one compiles")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="preset of the network")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.flows < 1:
        parser.error("need --epochs >= 2 (the first one compiles) and --flows >= 1")

    config = resolve_config(args.preset, overrides={"epochs": args.epochs})
    features, attack, source = _flows(args.flows, config.seed)
    inputs = to_model_input(features)
    targets = keras.utils.to_categorical(attack, 2)

    seed_everything(config.seed)
    model = build_bilstm(inputs.shape[2], config)
    timer = _EpochTimer()
    model.fit(
        inputs,
        targets,
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=[timer],
        verbose=0,
    )
    steady = sum(timer.seconds[1:])
    train_rate = args.flows * (config.epochs - 1) / steady

    predict_seconds = []
    for _ in range(1 + PREDICT_REPEATS):
        start = time.perf_counter()
        model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0)
        predict_seconds.append(time.perf_counter() - start)
    predict_rate = args.flows / float(np.median(predict_seconds[1:]))
    epochs = "epoch 2" if config.epochs == 2 else f"epochs 2-{config.epochs}"

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"network:    preset {args.preset}, {count_params(model):,} parameters")
    print(f"input:      {args.flows:,} flows x {inputs.shape[2]} features; {source}")
    print(f"machine:    {platform.machine()}, {os.cpu_count()} CPUs ({usable} usable)")
    print(f"backend:    {keras.backend.backend()}; {_versions()}")
    print(
        f"training:   {train_rate:,.0f} flows/s (batch {config.batch_size}, {epochs}: "
        f"{steady:.1f} s); first epoch with compile {timer.seconds[0]:.1f} s"
    )
    print(
        f"prediction: {predict_rate:,.0f} flows/s (batch {PREDICT_BATCH}, median of "
        f"{PREDICT_REPEATS} calls); first call with compile {predict_seconds[0]:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
