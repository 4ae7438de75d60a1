# SPDX-License-Identifier: Apache-2.0
"""Presets of training settings and the networks they build.

The presets load without Keras; the network names load Keras on first use, so commands that
only read settings stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from flowids.models.presets import (
    DEFAULT_PRESET,
    TrainingConfig,
    get_preset,
    list_presets,
    resolve_config,
)

_NETWORK_NAMES = (
    "architecture_table",
    "attack_metrics",
    "build_bilstm",
    "count_params",
    "seed_everything",
    "to_model_input",
)

__all__ = [
    "DEFAULT_PRESET",
    "TrainingConfig",
    "get_preset",
    "list_presets",
    "resolve_config",
    *_NETWORK_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _NETWORK_NAMES:
        return getattr(importlib.import_module("flowids.models.bilstm"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
