# SPDX-License-Identifier: Apache-2.0
"""Training: split flows without leakage, fit preprocessing and network, record the run.

:func:`train_run` reads top to bottom as the steps of a run: read flows, split,
fit preprocessing on the training part, build the network, fit, evaluate on the test part,
write the run record.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from flowids import __version__
from flowids.data.labels import BENIGN, is_attack
from flowids.data.readers import FlowTable, expand_paths, read_flows
from flowids.errors import DataError
from flowids.splits import Split, make_split
from flowids.thresholds import choose_threshold

logger = logging.getLogger(__name__)


def labelled_flows(table: FlowTable) -> FlowTable:
    """Keep the labelled flows of a table; refuse a table with no usable label."""
    if table.labels is None:
        files = ", ".join(report.path for report in table.reports)
        raise DataError(f"{files}: no Label column; training needs labelled flow records")
    unlabelled = table.labels == ""
    if unlabelled.all():
        files = ", ".join(report.path for report in table.reports)
        raise DataError(f"{files}: every flow is marked unlabelled ('No Label'); cannot train")
    if unlabelled.any():
        logger.warning("dropping %s flow records marked unlabelled", f"{unlabelled.sum():,}")
        table = table.take(np.flatnonzero(~unlabelled))
        for report in table.reports:
            n = report.labels.get("", 0)
            if n:
                report.dropped["unlabelled"] += n
    y = is_attack(table.labels)
    if y.min() == y.max():
        only = "attack" if y[0] else "benign"
        raise DataError(
            f"every training flow is {only}; the binary task needs both {BENIGN} and attack "
            "flows (add files of the other class)"
        )
    return table


def environment() -> dict:
    """Versions of Python, the platform and the libraries that shape results."""
    import keras

    versions = {}
    packages = (
        "keras",
        "jax",
        "jaxlib",
        "numpy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "lightgbm",
        "skops",
        "matplotlib",
        "nfstream",
    )
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "flowids": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras_backend": keras.backend.backend(),
        "cpu_count": os.cpu_count(),
        **versions,
    }


def data_summary(table: FlowTable) -> dict:
    """The run record's account of the input: files, drops, repairs, duplicates, labels."""
    from flowids.data.validity import repaired_values, validity_summary
    from flowids.splits import find_duplicates

    dropped: Counter = Counter()
    for report in table.reports:
        dropped.update(report.dropped)
    return {
        "files": [report.to_dict() for report in table.reports],
        "dropped": dict(dropped),
        "repaired": repaired_values(table.reports),
        "validity": validity_summary(table.reports),
        "duplicates": find_duplicates(table.features, table.labels),
        "labels": dict(Counter(table.labels.tolist()).most_common()),
        "flows": len(table),
    }


def one_hot(y: np.ndarray) -> np.ndarray:
    """Binary targets (n_flows,) as one-hot (n_flows, 2) float32: column 1 is attack."""
    return np.eye(2, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def timed(function, *args, **kwargs):
    """Call ``function`` and return its result with the wall time in seconds."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def read_training_flows(paths: list[str], validity=None) -> FlowTable:
    """Read and check the flows for a training run, with the validity policy given."""
    return labelled_flows(read_flows(paths, validity=validity))


def EpochProgress(epochs: int, enabled: bool):  # noqa: N802  (builds a Keras callback)
    """A Keras callback drawing a tqdm bar over epochs with the latest loss and val_loss."""
    import keras
    from tqdm.auto import tqdm

    class _EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc="training", unit="epoch", disable=not enabled)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix({k: f"{logs[k]:.4f}" for k in ("loss", "val_loss") if k in logs})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return _EpochProgress()


def write_plots(run_dir: Path, history_df: pd.DataFrame, y_test, p_test, metrics, threshold):
    """Draw the run's learning curves (networks only), ROC and confusion matrix."""
    from flowids import evaluation

    plots = {"confusion_matrix": "confusion_matrix.png"}
    evaluation.plot_confusion_matrix(metrics, run_dir / plots["confusion_matrix"])
    if len(history_df):
        plots["learning_curves"] = "learning_curves.png"
        plots["precision"] = "precision.png"
        plots["recall"] = "recall.png"
        evaluation.plot_learning_curves(history_df, run_dir / plots["learning_curves"])
        evaluation.plot_history_metric(history_df, "precision", run_dir / plots["precision"])
        evaluation.plot_history_metric(history_df, "recall", run_dir / plots["recall"])
    if len(set(np.asarray(y_test).tolist())) == 2:
        plots["roc"] = "roc.png"
        evaluation.plot_roc(y_test, p_test, run_dir / plots["roc"], threshold=threshold)
    return plots


def write_test_flows(run_dir: Path, table: FlowTable) -> str:
    """Save the test flows with canonical names, so the run can be re-scored on its own."""
    name = "test_flows.csv.gz"
    origin = table.origin.rename(columns={"file": "source_file", "row": "source_row"})
    identifiers = table.identifiers.drop(columns=["source_file", "source_row"], errors="ignore")
    stamps = identifiers.get("timestamp")
    if stamps is not None and (stamps.notna() & (stamps.astype(str).str.strip() != "")).all():
        # Written as parsed ISO times: the source file's clock (CIC-IDS2017's 12-hour one
        # without AM/PM) cannot be told from the copy alone.
        from flowids.splits import flow_times

        identifiers = identifiers.assign(
            timestamp=pd.Series(flow_times(table)).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        )
    frame = pd.concat([origin, identifiers, table.features], axis=1)
    frame["label"] = table.labels
    frame.to_csv(run_dir / name, index=False, float_format="%.9g")
    return name


def run_slug(preset: str, config) -> tuple[str, str]:
    """The two name parts after the time stamp of a run directory.

    The seed network keeps ``<preset>-<optimizer>``; other models put their name in, so runs
    of different models never share a name: ``seed-20200924-mlp-rmsprop``,
    ``seed-20200924-random-forest``.
    """
    if config.model == "bilstm":
        return preset, config.optimizer
    if config.model == "mlp":
        return f"{preset}-mlp", config.optimizer
    return preset, config.model


@dataclass
class FittedRun:
    """What a fit produced, before it is written as a run record."""

    table: FlowTable
    split: Split
    preprocessor: object
    detector: object
    history: pd.DataFrame
    fit_seconds: float
    fit_flows: int
    validation_flows: int
    operating_point: dict


def fit_run(
    table: FlowTable, config, progress: bool = True, test_files: list[str] | None = None
) -> FittedRun:
    """Split flows, fit preprocessing and the detector, choose the threshold.

    The training part's first ``1 - validation_fraction`` fits the detector; its last
    ``validation_fraction`` validates it and sets the threshold.
    """
    from flowids.evaluation import history_metrics
    from flowids.features.preprocessing import Preprocessor
    from flowids.models.bilstm import seed_everything
    from flowids.models.detectors import build_detector

    split = make_split(
        table,
        config.split,
        test_fraction=config.test_fraction,
        seed=config.seed,
        test_files=test_files,
    )
    train = table.take(split.train)
    n_fit = int(round(len(train) * (1 - config.validation_fraction)))

    preprocessor = Preprocessor().fit(
        train.features, dialects=table.dialects, validity=_validity(config)
    )
    x_train = preprocessor.transform(train.features, "training part")
    y_train = is_attack(train.labels)
    x_fit, y_fit, x_val, y_val = x_train[:n_fit], y_train[:n_fit], x_train[n_fit:], y_train[n_fit:]
    if config.timesteps > 1:
        x_fit, x_val = fit_and_validation_windows(train, x_train, n_fit, config)

    seed_everything(config.seed)
    detector = build_detector(x_train.shape[1], config)
    history, fit_seconds = timed(detector.fit, x_fit, y_fit, x_val, y_val, progress)
    history_df = history_metrics(history) if history else pd.DataFrame()

    operating_point = choose_operating_point(config, y_val, detector.attack_probability(x_val))
    return FittedRun(
        table,
        split,
        preprocessor,
        detector,
        history_df,
        fit_seconds,
        n_fit,
        len(train) - n_fit,
        operating_point,
    )


def fit_and_validation_windows(train: FlowTable, x_train: np.ndarray, n_fit: int, config):
    """Windows of the fit and validation parts, each built from its own flows only."""
    from flowids.features.windows import WindowSettings, table_windows

    settings = WindowSettings.from_config(config)
    fit_part, validation_part = np.arange(n_fit), np.arange(n_fit, len(train))
    return (
        table_windows(train.take(fit_part), x_train[:n_fit], settings),
        table_windows(train.take(validation_part), x_train[n_fit:], settings),
    )


def choose_operating_point(config, y_val: np.ndarray, p_val: np.ndarray) -> dict:
    """The threshold, chosen on the validation part by ``config.threshold_rule``."""
    point = choose_threshold(
        y_val,
        p_val,
        config.threshold_rule,
        threshold=config.threshold,
        target_fpr=config.target_fpr if config.threshold_rule == "target-fpr" else None,
    )
    return point.to_dict()


def train_run(
    paths: list[str],
    config,
    runs_dir: Path,
    preset: str,
    command: str | None = None,
    progress: bool = True,
    test_paths: list[str] | None = None,
) -> Path:
    """Run one training end to end and return the complete run directory.

    Steps: read flows, split, fit preprocessing on the training part, fit the detector,
    choose the threshold on validation flows, evaluate on the test part through the saved
    run (exactly as ``flowids predict`` scores), write the run record atomically.
    """
    table = read_training_flows([*paths, *(test_paths or [])], _validity(config))
    test_files = [str(path) for path in expand_paths(test_paths)] if test_paths else None
    fitted = fit_run(table, config, progress, test_files)
    return write_run(fitted, config, runs_dir, preset, command)


def _validity(config):
    """The validity policy that ``config.invalid`` names."""
    from flowids.data.validity import ValidityPolicy

    return ValidityPolicy.parse(getattr(config, "invalid", ""))


def write_run(fitted: FittedRun, config, runs_dir: Path, preset: str, command) -> Path:
    """Save the fitted run, score its test part through the saved files, write the record."""
    from flowids.evaluation import binary_metrics
    from flowids.features.preprocessing import NON_FINITE_RULE
    from flowids.features.windows import WindowSettings, table_time_order
    from flowids.predict import DECISION_FILE, PREPROCESSING_FILE, load_trained_run
    from flowids.runs import RunWriter

    test = fitted.table.take(fitted.split.test)
    windows = WindowSettings.from_config(config)
    if windows is not None:  # test flows in the order windows see them
        test = test.take(table_time_order(test, windows))
    y_test = is_attack(test.labels)
    threshold = fitted.operating_point["threshold"]

    with RunWriter(runs_dir, *run_slug(preset, config)) as writer:
        run_dir = writer.path
        model_file = fitted.detector.save(run_dir)
        fitted.preprocessor.save(run_dir / PREPROCESSING_FILE)
        decision = {
            "output": "attack probability",
            "model": config.model,
            "model_file": model_file,
            **({"windows": windows.to_dict()} if windows is not None else {}),
            **fitted.operating_point,
        }
        (run_dir / DECISION_FILE).write_text(_json(decision), encoding="utf-8")

        trained = load_trained_run(run_dir)
        trained.score_table(test.take(np.arange(1)), "warm-up")  # compiles; not timed
        p_test, predict_seconds = timed(trained.score_table, test, "test part")
        metrics = binary_metrics(y_test, p_test, threshold, labels=test.labels)

        env = environment()
        if len(fitted.history):
            fitted.history.to_csv(run_dir / "history.csv", index=False)
        (run_dir / "metrics.json").write_text(_json({"test": metrics}), encoding="utf-8")
        (run_dir / "config.json").write_text(_json(config.to_dict()), encoding="utf-8")
        (run_dir / "environment.json").write_text(_json(env), encoding="utf-8")
        test_file = write_test_flows(run_dir, test)
        plots = write_plots(run_dir, fitted.history, y_test, p_test, metrics, threshold)

        record = {
            "kind": "train",
            "flowids_version": __version__,
            "model": config.model,
            "preset": preset,
            "optimizer": config.optimizer if config.model in ("bilstm", "mlp") else None,
            "command": command,
            "config": config.to_dict(),
            "data": data_summary(fitted.table),
            "split": split_summary(fitted),
            "preprocessing": {
                "n_features_in": len(fitted.preprocessor.feature_names_in_),
                "n_features": len(fitted.preprocessor.feature_names_),
                "constant_features_dropped": fitted.preprocessor.constant_features_,
                "non_finite_rule": NON_FINITE_RULE,
                "scaling": "standard (mean and population std of the training part)",
                "dialects": fitted.preprocessor.dialects_,
                "validity": fitted.preprocessor.validity.to_dict(),
            },
            **fitted.detector.describe(),
            "training": {
                "seconds": fitted.fit_seconds,
                "epochs_run": len(fitted.history),
                "flows_per_s": fitted.fit_flows
                * max(len(fitted.history), 1)
                / max(fitted.fit_seconds, 1e-9),
            },
            "metrics": {"test": metrics},
            "prediction": {"flows_per_s": len(test) / max(predict_seconds, 1e-9)},
            "decision": decision,
            "environment": env,
            "plots": plots,
            "files": {
                "model": model_file,
                "preprocessing": PREPROCESSING_FILE,
                "decision": DECISION_FILE,
                **({"history": "history.csv"} if len(fitted.history) else {}),
                "metrics": "metrics.json",
                "config": "config.json",
                "environment": "environment.json",
                "test_flows": test_file,
            },
        }
        return writer.finish(record)


def split_summary(fitted: FittedRun) -> dict:
    """The run record's account of the split; ``train_flows`` counts the fitted part only."""
    summary = fitted.split.to_dict()
    summary["train_flows"] = fitted.fit_flows
    summary["validation_flows"] = fitted.validation_flows
    return summary


def _json(data) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
