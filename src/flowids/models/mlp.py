# SPDX-License-Identifier: Apache-2.0
"""A plain multilayer perceptron of about the BiLSTM's size: the fair ablation.

Fed one flow per sequence, the BiLSTM never uses its recurrence; this network drops the
recurrent layers and keeps the optimizer, loss, input shape and training recipe, so a
comparison with it isolates what the LSTM cells add.
"""

from __future__ import annotations

import keras

from flowids.models.bilstm import N_CLASSES, compile_network
from flowids.models.presets import TrainingConfig


def build_mlp(n_features: int, config: TrainingConfig) -> keras.Model:
    """Build and compile the MLP for inputs of shape (n_flows, timesteps, n_features).

    Layers: ``flatten``, then per width in ``config.mlp_units`` a ``dense_<i>`` with ReLU
    followed by ``batchnorm_<i>``, then ``logits`` (2 units) and ``softmax``. With the default
    widths (384, 192, 64, 16) and 68 features it has 116,466 weights against the BiLSTM's
    121,202.
    """
    inputs = keras.Input(shape=(config.timesteps, n_features), name="flows")
    hidden = keras.layers.Flatten(name="flatten")(inputs)
    for position, units in enumerate(config.mlp_units, start=1):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{position}")(hidden)
        hidden = keras.layers.BatchNormalization(name=f"batchnorm_{position}")(hidden)
    logits = keras.layers.Dense(N_CLASSES, name="logits")(hidden)
    outputs = keras.layers.Activation("softmax", name="softmax")(logits)
    model = keras.Model(inputs=inputs, outputs=outputs, name="flowids_mlp")
    return compile_network(model, config, n_features)
