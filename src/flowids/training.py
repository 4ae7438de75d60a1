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
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from flowids import __version__
from flowids.data.labels import BENIGN, is_attack
from flowids.data.readers import FlowTable, read_flows
from flowids.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Positions of the training and test flows of one split.

    Attributes
    ----------
    train, test : ndarray of int, shape (n_train,), (n_test,)
        Row positions in the flow table. The training part is in the order the model sees it;
        its last ``validation_fraction`` is the validation part.
    test_twins_in_train : int
        Test flows whose feature vector equals that of some training flow exactly.
    stratified_by : str
        What the split kept in proportion: 'label', 'binary' or 'none'.
    """

    name: str
    seed: int
    train: np.ndarray
    test: np.ndarray
    test_twins_in_train: int
    stratified_by: str


def _strata(labels: np.ndarray, y: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Stratify by label; a label with one flow joins the largest label of its binary class."""
    counts = Counter(labels.tolist())
    largest = {}
    for label, _ in counts.most_common():
        largest.setdefault(bool(y[labels == label][0]), label)
    strata = labels.copy()
    for label, n in counts.items():
        if n < 2:
            strata[labels == label] = largest[bool(y[labels == label][0])]
    if min(Counter(strata.tolist()).values()) >= 2:
        return strata, "label"
    return None, "none"


def count_twins(features: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> int:
    """Count test flows whose feature vector occurs exactly in the training part.

    Parameters
    ----------
    features : DataFrame of shape (n_flows, n_features)
    train, test : ndarray of int
        Row positions of the two parts.
    """
    hashes = pd.util.hash_pandas_object(features, index=False).to_numpy()
    return int(np.isin(hashes[test], hashes[train]).sum())


def random_split(table: FlowTable, test_fraction: float, seed: int) -> Split:
    """Stratified random split into training and test parts with a fixed seed.

    Notes
    -----
    Labels with one flow cannot be stratified; they are stratified with their binary class
    (benign or attack) so that a rare attack never crashes the split.
    """
    y = is_attack(table.labels)
    strata, stratified_by = _strata(table.labels, y)
    if stratified_by != "label":
        logger.warning("split stratified by %s only: some classes are too small", stratified_by)
    positions = np.arange(len(table))
    train, test = train_test_split(
        positions, test_size=test_fraction, random_state=seed, stratify=strata, shuffle=True
    )
    twins = count_twins(table.features, train, test)
    logger.info(
        "random split (seed %d): %s training flows, %s test flows, %s test flows with a "
        "twin in training",
        seed,
        f"{len(train):,}",
        f"{len(test):,}",
        f"{twins:,}",
    )
    return Split("random", seed, train, test, twins, stratified_by)


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
    for package in ("keras", "jax", "jaxlib", "numpy", "pandas", "scikit-learn", "pyarrow"):
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
    """The run record's account of the input: files, hashes, drops, repairs and labels."""
    dropped: Counter = Counter()
    non_finite: Counter = Counter()
    for report in table.reports:
        dropped.update(report.dropped)
        non_finite.update(report.non_finite)
    return {
        "files": [report.to_dict() for report in table.reports],
        "dropped": dict(dropped),
        "repaired": {
            f"non-finite {name} (by the preprocessing rule)": n
            for name, n in non_finite.most_common()
        },
        "labels": dict(Counter(table.labels.tolist()).most_common()),
        "flows": len(table),
    }


def one_hot(y: np.ndarray) -> np.ndarray:
    """Binary targets (n_flows,) as one-hot (n_flows, 2) float32: column 1 is attack."""
    return np.eye(2, dtype=np.float32)[np.asarray(y, dtype=np.int64)]


def run_name_time(now: datetime | None = None) -> datetime:
    return now or datetime.now()


def timed(function, *args, **kwargs):
    """Call ``function`` and return its result with the wall time in seconds."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def read_training_flows(paths: list[str]) -> FlowTable:
    """Read and check the flows for a training run."""
    return labelled_flows(read_flows(paths))


class _EpochProgress:
    """A tqdm bar over epochs showing the latest loss and validation loss."""

    def __new__(cls, epochs: int, enabled: bool):
        import keras
        from tqdm.auto import tqdm

        class EpochProgress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.bar = tqdm(total=epochs, desc="training", unit="epoch", disable=not enabled)

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                self.bar.set_postfix(
                    {k: f"{logs[k]:.4f}" for k in ("loss", "val_loss") if k in logs}
                )
                self.bar.update(1)

            def on_train_end(self, logs=None):
                self.bar.close()

        return EpochProgress()


def fit_network(model, x_train: np.ndarray, y_train: np.ndarray, config, progress: bool) -> dict:
    """Fit the network; the last ``validation_fraction`` of the training part validates.

    Parameters
    ----------
    x_train : ndarray of float32, shape (n_flows, timesteps, n_features)
    y_train : ndarray of int, shape (n_flows,)

    Returns
    -------
    dict of str to list of float
        Keras's per-epoch history.
    """
    history = model.fit(
        x_train,
        one_hot(y_train),
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_split=config.validation_fraction,
        shuffle=True,
        verbose=0,
        callbacks=[_EpochProgress(config.epochs, progress)],
    )
    return history.history


def write_plots(run_dir: Path, history_df: pd.DataFrame, y_test, p_test, metrics, threshold):
    """Draw the run's learning curves, precision, recall, ROC and confusion matrix."""
    from flowids import evaluation

    plots = {
        "learning_curves": "learning_curves.png",
        "precision": "precision.png",
        "recall": "recall.png",
        "confusion_matrix": "confusion_matrix.png",
    }
    evaluation.plot_learning_curves(history_df, run_dir / plots["learning_curves"])
    evaluation.plot_history_metric(history_df, "precision", run_dir / plots["precision"])
    evaluation.plot_history_metric(history_df, "recall", run_dir / plots["recall"])
    evaluation.plot_confusion_matrix(metrics, run_dir / plots["confusion_matrix"])
    if len(set(np.asarray(y_test).tolist())) == 2:
        plots["roc"] = "roc.png"
        evaluation.plot_roc(y_test, p_test, run_dir / plots["roc"], threshold=threshold)
    return plots


def write_test_flows(run_dir: Path, table: FlowTable) -> str:
    """Save the test flows with canonical names, so the run can be re-scored on its own."""
    name = "test_flows.csv.gz"
    origin = table.origin.rename(columns={"file": "source_file", "row": "source_row"})
    identifiers = table.identifiers.drop(columns=["source_file", "source_row"], errors="ignore")
    frame = pd.concat([origin, identifiers, table.features], axis=1)
    frame["label"] = table.labels
    frame.to_csv(run_dir / name, index=False, float_format="%.9g")
    return name


def train_run(
    paths: list[str],
    config,
    runs_dir: Path,
    preset: str,
    command: str | None = None,
    progress: bool = True,
) -> Path:
    """Run one training end to end and return the complete run directory.

    Steps: read flows, split, fit preprocessing on the training part, build the network,
    fit, evaluate on the test part, write the run record (atomically).
    """
    import keras

    from flowids.evaluation import binary_metrics, history_metrics
    from flowids.features.preprocessing import NON_FINITE_RULE, Preprocessor
    from flowids.models.bilstm import (
        architecture_table,
        build_bilstm,
        seed_everything,
        to_model_input,
    )
    from flowids.predict import DECISION_FILE, MODEL_FILE, PREPROCESSING_FILE, load_trained_run
    from flowids.runs import RunWriter

    table = read_training_flows(paths)
    split = random_split(table, config.test_fraction, config.seed)
    train, test = table.take(split.train), table.take(split.test)

    preprocessor = Preprocessor().fit(train.features, dialects=table.dialects)
    x_train = to_model_input(preprocessor.transform(train.features, "training part"))
    y_train, y_test = is_attack(train.labels), is_attack(test.labels)

    seed_everything(config.seed)
    model = build_bilstm(x_train.shape[-1], config)
    history, fit_seconds = timed(fit_network, model, x_train, y_train, config, progress)
    history_df = history_metrics(history)

    with RunWriter(runs_dir, preset, config.optimizer) as writer:
        run_dir = writer.path
        model.save(run_dir / MODEL_FILE)
        preprocessor.save(run_dir / PREPROCESSING_FILE)
        decision = {"output": "softmax", "attack_column": 1, "rule": "fixed"}
        decision["threshold"] = config.threshold
        (run_dir / DECISION_FILE).write_text(_json(decision), encoding="utf-8")

        # Score the test part through the saved run, exactly as `flowids predict` would.
        trained = load_trained_run(run_dir)
        p_test, predict_seconds = timed(trained.score, test.features, "test part")
        metrics = binary_metrics(y_test, p_test, config.threshold, labels=test.labels)

        history_df.to_csv(run_dir / "history.csv", index=False)
        (run_dir / "metrics.json").write_text(_json({"test": metrics}), encoding="utf-8")
        (run_dir / "config.json").write_text(_json(config.to_dict()), encoding="utf-8")
        env = environment()
        (run_dir / "environment.json").write_text(_json(env), encoding="utf-8")
        test_file = write_test_flows(run_dir, test)
        plots = write_plots(run_dir, history_df, y_test, p_test, metrics, config.threshold)

        fit_rows = int(round(len(train) * (1 - config.validation_fraction)))
        record = {
            "kind": "train",
            "flowids_version": __version__,
            "model": config.model,
            "preset": preset,
            "optimizer": config.optimizer,
            "command": command,
            "config": config.to_dict(),
            "data": data_summary(table),
            "split": {
                "name": split.name,
                "seed": split.seed,
                "stratified_by": split.stratified_by,
                "train_flows": fit_rows,
                "validation_flows": len(train) - fit_rows,
                "test_flows": len(test),
                "test_twins_in_train": split.test_twins_in_train,
            },
            "preprocessing": {
                "n_features_in": len(preprocessor.feature_names_in_),
                "n_features": len(preprocessor.feature_names_),
                "constant_features_dropped": preprocessor.constant_features_,
                "non_finite_rule": NON_FINITE_RULE,
                "scaling": "standard (mean and population std of the training part)",
                "dialects": preprocessor.dialects_,
            },
            "architecture": architecture_table(model),
            "total_params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "training": {
                "seconds": fit_seconds,
                "epochs_run": len(history_df),
                "flows_per_s": fit_rows * len(history_df) / fit_seconds,
                "keras_backend": keras.backend.backend(),
            },
            "metrics": {"test": metrics},
            "prediction": {"flows_per_s": len(test) / max(predict_seconds, 1e-9)},
            "decision": decision,
            "environment": env,
            "plots": plots,
            "files": {
                "model": MODEL_FILE,
                "preprocessing": PREPROCESSING_FILE,
                "decision": DECISION_FILE,
                "history": "history.csv",
                "metrics": "metrics.json",
                "config": "config.json",
                "environment": "environment.json",
                "test_flows": test_file,
            },
        }
        return writer.finish(record)


def _json(data) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
