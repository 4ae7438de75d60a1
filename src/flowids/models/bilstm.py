# SPDX-License-Identifier: Apache-2.0
"""The stacked bidirectional LSTM that scores flows, built and compiled from a TrainingConfig.

The network is a plain functional Keras model, so ``keras.saving.load_model`` reloads a saved
one without any flowids code.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from flowids.errors import DataError, UsageError
from flowids.features.windows import MASK_VALUE
from flowids.models.presets import LOSSES, MODELS, OPTIMIZERS, TrainingConfig

logger = logging.getLogger(__name__)

N_CLASSES = 2
ATTACK_CLASS = 1


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and the Keras backend's random generators with `seed`.

    Call it before :func:`build_bilstm`: weight initialisers and the noise layers draw from
    these generators, so the same seed gives the same initial network and the same noise.
    """
    keras.utils.set_random_seed(seed)
    logger.debug("seeded random generators with %d", seed)


def attack_metrics() -> list[keras.metrics.Metric]:
    """Return precision and recall of the attack class, for one-hot targets of 2 classes.

    Notes
    -----
    Keras counts a flow as predicted attack when its attack probability is strictly above
    0.5, while a verdict is attack from the threshold on (>=); the two differ only for
    flows scored exactly 0.5.
    """
    return [
        keras.metrics.Precision(class_id=ATTACK_CLASS, name="precision"),
        keras.metrics.Recall(class_id=ATTACK_CLASS, name="recall"),
    ]


def build_bilstm(n_features: int, config: TrainingConfig) -> keras.Model:
    """Build and compile the stacked bidirectional LSTM for `n_features` features.

    Parameters
    ----------
    n_features : int
        Features per flow after preprocessing.
    config : TrainingConfig
        Network, optimizer and loss settings; see :mod:`flowids.models.presets`.

    Returns
    -------
    keras.Model
        Compiled model mapping inputs of shape (n_flows, timesteps, n_features) to
        probabilities of shape (n_flows, 2): column 0 benign, column 1 attack.

    Raises
    ------
    UsageError
        If `n_features` is not a positive integer, or the config names a model, optimizer or
        loss this builder does not make.

    Notes
    -----
    Layers, by name: with ``timesteps`` > 1 first ``padding_mask``, a Masking layer that
    marks window rows whose every feature is ``MASK_VALUE`` as padding, which the LSTMs skip
    and the batch normalisations leave out of their statistics (with ``timesteps`` = 1 there
    is no padding and no such layer); ``bilstm_1`` (returns sequences) with ``noise_1`` and
    ``batchnorm_1``; then for each further LSTM size ``bilstm_<i>`` and ``batchnorm_<i>``
    (only the last one returns a single vector); ``flatten``, ``dense``, ``noise_dense``,
    ``relu6``, ``batchnorm_dense``, ``logits`` and ``softmax``. Kernels and recurrent kernels
    of both directions are limited to norm ``max_norm``; only the forward direction's LSTM
    bias carries the L2 penalty ``fwd_bias_l2``.
    """
    _check_build_arguments(n_features, config)

    inputs = keras.Input(shape=(config.timesteps, n_features), name="flows")
    hidden = inputs
    if config.timesteps > 1:
        hidden = keras.layers.Masking(mask_value=MASK_VALUE, name="padding_mask")(inputs)
    hidden = _recurrent_stack(hidden, config)
    outputs = _dense_head(hidden, config)
    model = keras.Model(inputs=inputs, outputs=outputs, name="flowids_bilstm")
    return compile_network(model, config, n_features)


def compile_network(model: keras.Model, config: TrainingConfig, n_features: int) -> keras.Model:
    """Compile a flowids network with the config's optimizer, loss and attack metrics."""
    model.compile(
        optimizer=build_optimizer(config),
        loss=keras.losses.CategoricalCrossentropy(name=config.loss),
        metrics=attack_metrics(),
    )
    logger.info(
        "built %s for %d features: %d parameters", model.name, n_features, model.count_params()
    )
    return model


def _check_build_arguments(n_features: int, config: TrainingConfig) -> None:
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
        raise UsageError(f"n_features = {n_features!r} is not valid; expected an integer >= 1")
    if n_features < 1:
        raise UsageError(f"n_features = {n_features} is not valid; expected an integer >= 1")

    for key, allowed in (("model", MODELS), ("optimizer", OPTIMIZERS), ("loss", LOSSES)):
        if getattr(config, key) not in allowed:
            raise UsageError(
                f"{key} = {getattr(config, key)!r} cannot be built; expected one of "
                f"{', '.join(allowed)}"
            )


def _recurrent_stack(inputs: keras.KerasTensor, config: TrainingConfig) -> keras.KerasTensor:
    hidden = inputs
    last = len(config.lstm_units)
    for position, units in enumerate(config.lstm_units, start=1):
        hidden = _bidirectional_lstm(units, position, position < last, config)(hidden)
        if position == 1:
            hidden = keras.layers.GaussianNoise(config.noise_stddev, name="noise_1")(hidden)
        hidden = keras.layers.BatchNormalization(name=f"batchnorm_{position}")(hidden)
    return keras.layers.Flatten(name="flatten")(hidden)


def _bidirectional_lstm(
    units: int, position: int, return_sequences: bool, config: TrainingConfig
) -> keras.layers.Bidirectional:
    def lstm(go_backwards: bool, bias_l2: float) -> keras.layers.LSTM:
        direction = "backward" if go_backwards else "forward"
        return keras.layers.LSTM(
            units,
            return_sequences=return_sequences,
            go_backwards=go_backwards,
            kernel_constraint=keras.constraints.MaxNorm(config.max_norm),
            recurrent_constraint=keras.constraints.MaxNorm(config.max_norm),
            bias_regularizer=keras.regularizers.L2(bias_l2) if bias_l2 else None,
            name=f"{direction}_lstm_{position}",
        )

    return keras.layers.Bidirectional(
        lstm(go_backwards=False, bias_l2=config.fwd_bias_l2),
        backward_layer=lstm(go_backwards=True, bias_l2=0.0),
        name=f"bilstm_{position}",
    )


def _dense_head(hidden: keras.KerasTensor, config: TrainingConfig) -> keras.KerasTensor:
    hidden = keras.layers.Dense(
        config.dense_units,
        kernel_constraint=keras.constraints.MaxNorm(config.max_norm),
        bias_regularizer=(
            keras.regularizers.L2(config.dense_bias_l2) if config.dense_bias_l2 else None
        ),
        name="dense",
    )(hidden)
    hidden = keras.layers.GaussianNoise(config.noise_stddev, name="noise_dense")(hidden)
    hidden = keras.layers.Activation("relu6", name="relu6")(hidden)
    hidden = keras.layers.BatchNormalization(name="batchnorm_dense")(hidden)

    logits = keras.layers.Dense(N_CLASSES, name="logits")(hidden)
    return keras.layers.Activation("softmax", name="softmax")(logits)


def build_optimizer(config: TrainingConfig) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=1,
        decay_rate=config.lr_decay,
    )
    return keras.optimizers.RMSprop(
        learning_rate=schedule,
        momentum=config.momentum,
        clipnorm=config.clipnorm,
    )


def architecture_table(model: keras.Model) -> list[dict[str, object]]:
    """Describe each layer of a built model, for reports.

    Returns
    -------
    list of dict
        One entry per layer after the input, in order, with keys ``name``, ``type`` (class
        name), ``output_shape`` (such as ``"(None, 1, 128)"``; None is the flow axis) and
        ``params`` (weights of the layer, trainable or not).
    """
    return [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": _shape_text(layer.output.shape),
            "params": int(layer.count_params()),
        }
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


def count_params(model: keras.Model) -> int:
    """Return the number of weights of a built model, trainable and not."""
    return int(model.count_params())


def to_model_input(features: np.ndarray, timesteps: int = 1) -> np.ndarray:
    """Arrange preprocessed flows, or windows of them, as model input.

    Parameters
    ----------
    features : ndarray of shape (n_flows, n_features), or (n_windows, timesteps, n_features)
        Preprocessed, finite feature values; cast to float32. With ``timesteps`` > 1, windows
        as :func:`flowids.features.windows.build_windows` makes them.
    timesteps : int
        Flows per sequence.

    Returns
    -------
    ndarray of shape (n_flows, timesteps, n_features), float32
        With ``timesteps`` = 1 each flow as a sequence of one step: a view of `features`
        when it is already a C-contiguous float32 array.

    Raises
    ------
    UsageError
        If `features` does not have the shape that `timesteps` asks for.
    DataError
        If any value is NaN or infinite.
    """
    values = np.asarray(features, dtype=np.float32)
    if timesteps != 1 and (values.ndim != 3 or values.shape[1] != timesteps):
        raise UsageError(
            f"features have shape {values.shape}; with timesteps = {timesteps} expected "
            f"windows of shape (n_windows, {timesteps}, n_features) (see build_windows)"
        )
    if timesteps == 1 and values.ndim != 2:
        raise UsageError(
            f"features have shape {values.shape}; expected (n_flows, n_features), one row per flow"
        )

    finite = np.isfinite(values)
    if not finite.all():
        flow, *_, feature = np.argwhere(~finite)[0]
        raise DataError(
            f"features hold {int((~finite).sum())} NaN or infinite values, first at flow "
            f"{flow} (0-based), feature column {feature}; the model needs finite values: "
            "apply the fitted preprocessing first"
        )

    if timesteps != 1:
        return values
    return values.reshape(values.shape[0], 1, values.shape[1])
