# SPDX-License-Identifier: Apache-2.0
"""Named presets of model and training settings, and their resolution into one checked config.

A run's settings come from a preset, then a TOML file, then explicit overrides; the result is
a frozen :class:`TrainingConfig` that a run record stores with :meth:`TrainingConfig.to_dict`.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flowids.errors import UsageError

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "seed-20200924"

# Values the model builder can act on; anything else is refused when the config is resolved.
MODELS = ("bilstm", "mlp", "random-forest", "gradient-boosting", "logistic-regression")
SPLITS = ("random", "dedup", "time", "files")
THRESHOLD_RULES = ("fixed", "best-f1", "target-fpr")
OPTIMIZERS = ("rmsprop",)
LOSSES = ("categorical_crossentropy",)
# What flows of one window share (see flowids.features.windows): source IP to destination IP
# and port, destination IP and port, or source IP.
WINDOW_KEYS = ("src-dst-port", "dst", "src")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Every setting of a training run: network, optimizer, data split, seed and threshold.

    Instances are checked on creation; build them with :func:`resolve_config` rather than by
    hand, so that presets, config files and overrides apply in a fixed order.

    Attributes
    ----------
    model : str
        Detector to train: ``"bilstm"``, or a baseline in the same harness: ``"mlp"``,
        ``"random-forest"``, ``"gradient-boosting"`` (LightGBM), ``"logistic-regression"``.
    timesteps : int
        Flows per model input sequence; ``1`` feeds each flow on its own, more feeds each
        flow as the last of a window of related flows (``window_key``, ``window_gap_s``).
    lstm_units : tuple of int
        Units per direction of each stacked bidirectional LSTM, input side first.
    dense_units : int
        Units of the hidden dense layer before the softmax.
    noise_stddev : float
        Standard deviation of the Gaussian noise layers, in units of the scaled features.
    max_norm : float
        Largest allowed norm of each incoming weight vector (kernels and recurrent kernels).
    fwd_bias_l2 : float
        L2 penalty on the bias of each forward-direction LSTM.
    dense_bias_l2 : float
        L2 penalty on the bias of the hidden dense layer.
    optimizer : str
        Optimizer name; only ``"rmsprop"`` so far.
    learning_rate : float
        Learning rate at step 0.
    momentum : float
        RMSprop momentum, in [0, 1).
    clipnorm : float
        Each gradient is rescaled to at most this norm.
    lr_decay : float
        Time-based decay per optimizer step: rate = learning_rate / (1 + lr_decay * step).
    loss : str
        Loss name; only ``"categorical_crossentropy"`` so far.
    epochs : int
        Passes over the training flows.
    batch_size : int
        Flows per gradient step.
    validation_fraction : float
        Share of the training part held out for validation, taken from its END (as Keras's
        ``validation_split`` does), in (0, 1).
    test_fraction : float
        Share of all flows held out for the test, in (0, 1).
    split : str
        Name of the rule that splits flows into training and test parts.
    seed : int
        Seed of every random generator, in [0, 2**32).
    threshold : float
        Attack probability from which a flow's verdict is attack, in [0, 1], when
        ``threshold_rule`` is ``"fixed"``.
    threshold_rule : str
        How the threshold is chosen on the validation part: ``"fixed"`` (``threshold``),
        ``"best-f1"`` or ``"target-fpr"`` (the lowest threshold whose validation
        false-positive rate is at most ``target_fpr``).
    target_fpr : float
        False-positive rate that ``"target-fpr"`` aims for, as a share of benign flows.
    mlp_units : tuple of int
        Hidden layer widths of the ``"mlp"`` model, input side first.
    window_key : str
        With ``timesteps`` > 1, what the flows of a window share: ``"src-dst-port"`` (source
        IP to destination IP and port), ``"dst"`` (destination IP and port) or ``"src"``
        (source IP).
    window_gap_s : float
        With ``timesteps`` > 1, seconds between consecutive flows of a key beyond which a
        new sequence starts.
    invalid : str
        Validity policy for negative values, -1 window sentinels and non-finite values
        (:class:`flowids.data.validity.ValidityPolicy`): ``"repair"``, ``"drop"``, ``"fail"``
        or ``RULE=ACTION`` items; stored in full form, e.g.
        ``"negative=keep,sentinel=keep,non-finite=repair"`` (the default).
    """

    model: str
    timesteps: int
    lstm_units: tuple[int, ...]
    dense_units: int
    noise_stddev: float
    max_norm: float
    fwd_bias_l2: float
    dense_bias_l2: float
    optimizer: str
    learning_rate: float
    momentum: float
    clipnorm: float
    lr_decay: float
    loss: str
    epochs: int
    batch_size: int
    validation_fraction: float
    test_fraction: float
    split: str
    seed: int
    threshold: float
    threshold_rule: str = "fixed"
    target_fpr: float = 0.001
    mlp_units: tuple[int, ...] = (384, 192, 64, 16)
    window_key: str = "src-dst-port"
    window_gap_s: float = 120.0
    invalid: str = "negative=keep,sentinel=keep,non-finite=repair"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = _check_value(field.name, getattr(self, field.name), "TrainingConfig")
            object.__setattr__(self, field.name, value)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-safe dict (tuples become lists), keys in field order."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object], source: str = "config dict") -> TrainingConfig:
        """Rebuild a config from :meth:`to_dict` output, such as a run record's copy.

        Parameters
        ----------
        data : mapping
            Every setting by name; lists stand for tuples.
        source : str
            Where `data` came from, named in error messages.

        Raises
        ------
        UsageError
            If a key is unknown or missing, or a value has the wrong type or range.
        """
        _check_keys(data, source)

        missing = [name for name in FIELD_NAMES if name not in data]
        if missing:
            raise UsageError(
                f"{source}: missing settings {', '.join(missing)}; a saved config holds every "
                f"setting: {', '.join(FIELD_NAMES)}"
            )

        values = {key: _check_value(key, value, source) for key, value in data.items()}
        return cls(**values)


FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(TrainingConfig))


def list_presets() -> dict[str, str]:
    """Return every preset name with its one-line description, default preset first."""
    return {name: preset.description for name, preset in _PRESETS.items()}


def get_preset(name: str = DEFAULT_PRESET) -> TrainingConfig:
    """Return the config of preset `name`.

    Raises
    ------
    UsageError
        If no preset has that name; the message lists the known ones.
    """
    if name not in _PRESETS:
        raise UsageError(f"unknown preset {name!r}; known presets: {', '.join(_PRESETS)}")
    return _PRESETS[name].config


def resolve_config(
    preset: str = DEFAULT_PRESET,
    config_file: Path | None = None,
    overrides: Mapping[str, object] | None = None,
) -> TrainingConfig:
    """Resolve the settings of a run: preset, then config file, then overrides.

    Parameters
    ----------
    preset : str
        Name of the preset that supplies every default.
    config_file : Path, optional
        TOML file whose settings replace the preset's, either as top-level keys or inside a
        ``[training]`` table (not both).
    overrides : mapping, optional
        Settings that replace both, such as command-line options; ``None`` values are
        ignored, so unset options can be passed as they are.

    Returns
    -------
    TrainingConfig
        The checked settings.

    Raises
    ------
    UsageError
        If the preset is unknown, the file cannot be read, a key is unknown, or a value has the
        wrong type or range; the message names the source, key, value and what is expected.
    """
    values = get_preset(preset).to_dict()

    if config_file is not None:
        values.update(_read_config_file(Path(config_file)))

    if overrides is not None:
        given = {key: value for key, value in overrides.items() if value is not None}
        values.update(_checked("overrides", given))

    config = TrainingConfig(**values)
    logger.debug("resolved config from preset %s, file %s: %s", preset, config_file, config)
    return config


def _read_config_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"config file {path}: not found; check the path") from None
    except OSError as exc:
        raise UsageError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path}: not valid TOML ({exc})") from None

    settings: Mapping[str, object] = document
    if isinstance(document.get("training"), dict):
        others = [key for key in document if key != "training"]
        if others:
            raise UsageError(
                f"config file {path}: keys {', '.join(others)} sit outside the [training] "
                "table; put every setting either at the top level or under [training], "
                "not both"
            )
        settings = document["training"]

    return _checked(f"config file {path}", settings)


def _checked(source: str, settings: Mapping[str, object]) -> dict[str, object]:
    _check_keys(settings, source)
    return {key: _check_value(key, value, source) for key, value in settings.items()}


def _check_keys(settings: Mapping[str, object], source: str) -> None:
    for key in settings:
        if key in FIELD_NAMES:
            continue
        close = difflib.get_close_matches(str(key), FIELD_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(
            f"{source}: unknown key {key!r}{hint}; allowed keys: {', '.join(FIELD_NAMES)}"
        )


# Each checker returns the normalised value, or None when the value does not fit.
_Checker = Callable[[object], object | None]


def _int_at_least(low: int, high: int | None = None) -> _Checker:
    def check(value: object) -> object | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if value < low or (high is not None and value >= high):
            return None
        return value

    return check


def _float_between(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> _Checker:
    def check(value: object) -> object | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        if not math.isfinite(number):
            return None
        if number < low or (low_open and number == low):
            return None
        if number > high or (high_open and number == high):
            return None
        return number

    return check


def _choice(allowed: tuple[str, ...] | None) -> _Checker:
    def check(value: object) -> object | None:
        if not isinstance(value, str) or not value:
            return None
        if allowed is not None and value not in allowed:
            return None
        return value

    return check


def _units(value: object) -> object | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    single = _int_at_least(1)
    if any(single(item) is None for item in value):
        return None
    return tuple(value)


def _validity_policy(value: object) -> object | None:
    from flowids.data.validity import ValidityPolicy

    if not isinstance(value, str):
        return None
    try:
        return ValidityPolicy.parse(value).text()
    except UsageError:
        return None


_INF = math.inf

# key -> (checker, what is expected, in words)
_RULES: dict[str, tuple[_Checker, str]] = {
    "model": (_choice(MODELS), f"one of {', '.join(MODELS)}"),
    "timesteps": (_int_at_least(1), "an integer >= 1"),
    "lstm_units": (_units, "a non-empty list of integers >= 1, such as [64, 32, 16]"),
    "dense_units": (_int_at_least(1), "an integer >= 1"),
    "noise_stddev": (_float_between(0.0, _INF), "a number >= 0"),
    "max_norm": (_float_between(0.0, _INF, low_open=True), "a number > 0"),
    "fwd_bias_l2": (_float_between(0.0, _INF), "a number >= 0"),
    "dense_bias_l2": (_float_between(0.0, _INF), "a number >= 0"),
    "optimizer": (_choice(OPTIMIZERS), f"one of {', '.join(OPTIMIZERS)}"),
    "learning_rate": (_float_between(0.0, _INF, low_open=True), "a number > 0"),
    "momentum": (_float_between(0.0, 1.0, high_open=True), "a number in [0, 1)"),
    "clipnorm": (_float_between(0.0, _INF, low_open=True), "a number > 0"),
    "lr_decay": (_float_between(0.0, _INF), "a number >= 0"),
    "loss": (_choice(LOSSES), f"one of {', '.join(LOSSES)}"),
    "epochs": (_int_at_least(1), "an integer >= 1"),
    "batch_size": (_int_at_least(1), "an integer >= 1"),
    "validation_fraction": (
        _float_between(0.0, 1.0, low_open=True, high_open=True),
        "a number in (0, 1)",
    ),
    "test_fraction": (
        _float_between(0.0, 1.0, low_open=True, high_open=True),
        "a number in (0, 1)",
    ),
    "split": (_choice(SPLITS), f"one of {', '.join(SPLITS)}"),
    "seed": (_int_at_least(0, 2**32), "an integer in [0, 2**32)"),
    "threshold": (_float_between(0.0, 1.0), "a number in [0, 1]"),
    "threshold_rule": (_choice(THRESHOLD_RULES), f"one of {', '.join(THRESHOLD_RULES)}"),
    "target_fpr": (
        _float_between(0.0, 1.0, low_open=True, high_open=True),
        "a number in (0, 1)",
    ),
    "mlp_units": (_units, "a non-empty list of integers >= 1, such as [384, 192, 64, 16]"),
    "window_key": (_choice(WINDOW_KEYS), f"one of {', '.join(WINDOW_KEYS)}"),
    "window_gap_s": (_float_between(0.0, _INF, low_open=True), "a number of seconds > 0"),
    "invalid": (
        _validity_policy,
        "repair, drop or fail, or RULE=ACTION items such as 'drop,sentinel=keep' "
        "(rules: negative, sentinel, non-finite)",
    ),
}


def _check_value(key: str, value: object, source: str) -> object:
    checker, expected = _RULES[key]
    checked = checker(value)
    if checked is None:
        raise UsageError(f"{source}: {key} = {value!r} is not valid; expected {expected}")
    return checked


# The registry comes last: each preset's TrainingConfig is checked by the rules above.
@dataclasses.dataclass(frozen=True)
class _Preset:
    description: str
    config: TrainingConfig


_PRESETS: dict[str, _Preset] = {
    DEFAULT_PRESET: _Preset(
        description=(
            "stacked BiLSTM 64-32-16 with noise and max-norm, RMSprop with time decay, "
            "40 epochs in batches of 512 flows, random 70/30 split, seed 20200924"
        ),
        config=TrainingConfig(
            model="bilstm",
            timesteps=1,
            lstm_units=(64, 32, 16),
            dense_units=16,
            noise_stddev=0.5,
            max_norm=4.0,
            fwd_bias_l2=1e-5,
            dense_bias_l2=1e-2,
            optimizer="rmsprop",
            learning_rate=0.001,
            momentum=0.95,
            clipnorm=0.9,
            lr_decay=1e-6,
            loss="categorical_crossentropy",
            epochs=40,
            batch_size=512,
            validation_fraction=0.3,
            test_fraction=0.3,
            split="random",
            seed=20200924,
            threshold=0.5,
        ),
    ),
}

# The seed network and recipe over windows of related flows instead of single flows.
_PRESETS["windows-t8"] = _Preset(
    description=(
        "seed-20200924's network and recipe over windows of 8 flows with the same source IP, "
        "destination IP and port (a gap over 120 s starts anew), padded and masked"
    ),
    config=dataclasses.replace(
        _PRESETS[DEFAULT_PRESET].config,
        timesteps=8,
        window_key="src-dst-port",
        window_gap_s=120.0,
    ),
)
