# SPDX-License-Identifier: Apache-2.0
"""Every detector behind one face: build, fit, score attack probability, save and load.

The BiLSTM and the MLP are Keras networks saved as ``.keras``; the classical baselines are
scikit-learn estimators saved with skops, a format that loads without running arbitrary code
(unlike pickle). Training, evaluation and prediction use only this face, so every model gets
the same split, preprocessing, metrics and run record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from flowids.errors import RunRecordError, UsageError
from flowids.models.presets import TrainingConfig

logger = logging.getLogger(__name__)

NETWORKS = ("bilstm", "mlp")
BASELINES = ("random-forest", "gradient-boosting", "logistic-regression")

# Flows scored per network call. Every call gets a batch of exactly this many flows (the last
# one padded), so a flow's score never depends on how many flows share its file.
PREDICT_BATCH = 4096


class NetworkDetector:
    """A Keras network taking (n_flows, timesteps, n_features) and giving softmax (n_flows, 2)."""

    kind = "network"
    file_name = "model.keras"

    def __init__(self, model, config: TrainingConfig | None = None) -> None:
        self.model = model
        self.config = config

    @classmethod
    def build(cls, n_features: int, config: TrainingConfig) -> NetworkDetector:
        if config.model == "bilstm":
            from flowids.models.bilstm import build_bilstm

            return cls(build_bilstm(n_features, config), config)
        from flowids.models.mlp import build_mlp

        return cls(build_mlp(n_features, config), config)

    def fit(self, x_fit, y_fit, x_val, y_val, progress: bool = True) -> dict:
        """Fit on the training flows, reporting validation loss and metrics per epoch.

        Parameters
        ----------
        x_fit, x_val : ndarray of float32, shape (n_flows, n_features), or FlowWindows
            Preprocessed flows, or their windows (networks with timesteps > 1); windows are
            built batch by batch, so memory grows with the flows, not with the timesteps.
        y_fit, y_val : ndarray of int, shape (n_flows,)
            1 for attack, 0 for benign.

        Returns
        -------
        dict of str to list of float
            Keras's per-epoch history.
        """
        from flowids.features.windows import FlowWindows
        from flowids.models.bilstm import to_model_input
        from flowids.training import EpochProgress, one_hot

        if isinstance(x_fit, FlowWindows):
            return self._fit_windows(x_fit, y_fit, x_val, y_val, progress)
        history = self.model.fit(
            to_model_input(x_fit),
            one_hot(y_fit),
            validation_data=(to_model_input(x_val), one_hot(y_val)),
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[EpochProgress(self.config.epochs, progress)],
        )
        return history.history

    def _fit_windows(self, x_fit, y_fit, x_val, y_val, progress: bool) -> dict:
        """Fit on windows gathered batch by batch, shuffled each epoch with the config's seed."""
        from flowids.training import EpochProgress

        seed = self.config.seed
        history = self.model.fit(
            _window_batches(x_fit, y_fit, self.config.batch_size, seed),
            validation_data=_window_batches(x_val, y_val, self.config.batch_size, None),
            epochs=self.config.epochs,
            verbose=0,
            callbacks=[EpochProgress(self.config.epochs, progress)],
        )
        return history.history

    def attack_probability(self, x) -> np.ndarray:
        """Attack probability (n_flows,) of preprocessed flows x (n_flows, n_features).

        ``x`` may also be a FlowWindows: then each flow is scored as the last of its window.
        """
        from flowids.features.windows import FlowWindows

        if isinstance(x, FlowWindows):
            return self._window_probability(x)
        outputs = []
        for start in range(0, len(x), PREDICT_BATCH):
            batch = x[start : start + PREDICT_BATCH]
            padded = np.zeros((PREDICT_BATCH, x.shape[1]), dtype=np.float32)
            padded[: len(batch)] = batch
            result = np.asarray(self.model.predict_on_batch(padded[:, None, :]))
            outputs.append(result[: len(batch), 1])
        if not outputs:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate(outputs).astype(np.float64)

    def _window_probability(self, windows) -> np.ndarray:
        """Attack probability of each window's last flow, in fixed-size batches."""
        steps = self.model.input_shape[1]
        if windows.timesteps != steps:
            raise UsageError(
                f"windows of {windows.timesteps} flows given to a network that reads "
                f"{steps}; build the windows with the run's own settings"
            )
        outputs = []
        for start in range(0, len(windows), PREDICT_BATCH):
            batch = windows.gather(slice(start, start + PREDICT_BATCH))
            padded = np.zeros((PREDICT_BATCH, *batch.shape[1:]), dtype=np.float32)
            padded[: len(batch)] = batch
            result = np.asarray(self.model.predict_on_batch(padded))
            outputs.append(result[: len(batch), 1])
        if not outputs:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate(outputs).astype(np.float64)

    def save(self, run_dir: Path) -> str:
        self.model.save(Path(run_dir) / self.file_name)
        return self.file_name

    @classmethod
    def load(cls, path: Path) -> NetworkDetector:
        import keras

        try:
            return cls(keras.saving.load_model(path, compile=False))
        except (ValueError, OSError) as exc:
            raise RunRecordError(f"{path}: cannot load the network ({exc})") from None

    def describe(self) -> dict:
        from flowids.models.bilstm import architecture_table

        return {
            "architecture": architecture_table(self.model),
            "total_params": int(self.model.count_params()),
            "trainable_params": int(
                sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)
            ),
        }


def _window_batches(windows, y: np.ndarray, batch_size: int, seed: int | None):
    """A Keras PyDataset of (windows, one-hot targets) batches; shuffled per epoch if seeded."""
    import keras

    from flowids.training import one_hot

    class _WindowBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.order = np.arange(len(windows))
            self.rng = None if seed is None else np.random.default_rng(seed)
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-len(windows) // batch_size)

        def __getitem__(self, batch: int):
            rows = self.order[batch * batch_size : (batch + 1) * batch_size]
            return windows.gather(rows), one_hot(y[rows])

        def on_epoch_end(self) -> None:
            if self.rng is not None:
                self.rng.shuffle(self.order)

    return _WindowBatches()


def _make_estimator(config: TrainingConfig):
    """The baseline estimator with library defaults, seeded."""
    if config.model == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=config.seed, n_jobs=-1)
    if config.model == "gradient-boosting":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=config.seed, n_jobs=-1, verbose=-1)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=config.seed)


# The classes a saved baseline may contain; anything else in a .skops file is refused.
_TRUSTED_PREFIXES = ("sklearn.", "lightgbm.", "numpy.", "collections.", "builtins.")


class BaselineDetector:
    """A scikit-learn compatible estimator with ``predict_proba``, saved with skops."""

    kind = "baseline"
    file_name = "model.skops"

    def __init__(self, estimator) -> None:
        self.estimator = estimator

    @classmethod
    def build(cls, n_features: int, config: TrainingConfig) -> BaselineDetector:
        estimator = _make_estimator(config)
        logger.info("built %s for %d features", type(estimator).__name__, n_features)
        return cls(estimator)

    def fit(self, x_fit, y_fit, x_val, y_val, progress: bool = True) -> dict:
        """Fit on the training flows; the validation flows serve the threshold rule only."""
        self.estimator.fit(x_fit, y_fit)
        return {}

    def attack_probability(self, x: np.ndarray) -> np.ndarray:
        """Attack probability (n_flows,) of preprocessed flows x (n_flows, n_features).

        Notes
        -----
        A forest adds its trees' votes from parallel threads in whatever order they finish,
        which changes the last bits of a score from call to call; scoring runs on one thread
        so that the same flow always gets the same score.
        """
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        column = list(self.estimator.classes_).index(1)
        if "n_jobs" in self.estimator.get_params():
            self.estimator.set_params(n_jobs=1)
        return np.asarray(self.estimator.predict_proba(x)[:, column], dtype=np.float64)

    def save(self, run_dir: Path) -> str:
        import skops.io

        skops.io.dump(self.estimator, Path(run_dir) / self.file_name)
        return self.file_name

    @classmethod
    def load(cls, path: Path) -> BaselineDetector:
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=path)
        except (OSError, ValueError) as exc:
            raise RunRecordError(f"{path}: cannot read the saved model ({exc})") from None
        refused = [name for name in untrusted if not name.startswith(_TRUSTED_PREFIXES)]
        if refused:
            raise RunRecordError(
                f"{path}: the saved model holds types flowids does not load: {', '.join(refused)}"
            )
        return cls(skops.io.load(path, trusted=untrusted))

    def describe(self) -> dict:
        params = self.estimator.get_params()
        return {
            "estimator": type(self.estimator).__name__,
            "estimator_params": {k: v for k, v in params.items() if _plain(v)},
        }


def _plain(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def build_detector(n_features: int, config: TrainingConfig):
    """Build the untrained detector that ``config.model`` names."""
    if config.model in NETWORKS:
        return NetworkDetector.build(n_features, config)
    if config.model in BASELINES:
        return BaselineDetector.build(n_features, config)
    raise UsageError(
        f"model {config.model!r} is unknown; expected one of {', '.join(NETWORKS + BASELINES)}"
    )


def load_detector(run_dir: Path, model_file: str):
    """Load the detector saved in ``run_dir`` as ``model_file``."""
    path = Path(run_dir) / model_file
    if not path.is_file():
        raise RunRecordError(f"{path}: model file missing from the run")
    if path.suffix == ".keras":
        return NetworkDetector.load(path)
    if path.suffix == ".skops":
        return BaselineDetector.load(path)
    raise RunRecordError(f"{path}: unknown model format {path.suffix!r}")
