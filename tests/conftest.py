# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the flowids tests."""

from __future__ import annotations

import os

# Test modules import Keras directly; it needs its backend before the first import.
os.environ.setdefault("KERAS_BACKEND", "jax")

from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Path:
    """The read-only shared folder beside the repository: data/ and cases/."""
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def cases_dir() -> Path:
    """The shared broken-input cases (read-only); their README.md states what is expected."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "cases"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real flow data (read-only); PROVENANCE.md there gives rows and labels."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"
