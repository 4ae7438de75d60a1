# SPDX-License-Identifier: Apache-2.0
"""Errors that flowids raises for bad input, bad options and failed runs.

The command line catches :class:`FlowidsError` once and prints its message; every message
says where the problem is (file, 1-based row, column), what was found and what was expected.
"""

from __future__ import annotations


class FlowidsError(Exception):
    """Base class of every error flowids raises on purpose."""

    exit_code = 1


class UsageError(FlowidsError, ValueError):
    """A command-line option or API argument has a value flowids cannot use."""

    exit_code = 2


class DataError(FlowidsError, ValueError):
    """An input file cannot be read as flow records, or holds values that the policy refuses."""

    exit_code = 2


class MissingFeaturesError(DataError):
    """An input lacks features that a trained run needs."""


class RunRecordError(FlowidsError):
    """A run directory is missing, incomplete or was written by an incompatible version."""

    exit_code = 2
