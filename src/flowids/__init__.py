# SPDX-License-Identifier: Apache-2.0
"""flowids: detect attack traffic in network flow records with a stacked bidirectional LSTM."""

import os

# Keras needs a backend before its first import. flowids installs JAX; a KERAS_BACKEND that
# the user set (tensorflow, torch) is respected, since the code uses keras.ops only.
os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.1.0"
