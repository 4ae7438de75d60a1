# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the flowids tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shared_dir() -> Path:
    """The read-only shared folder beside the repository: data/ and cases/."""
    return Path(__file__).resolve().parents[1].parent / "shared"
