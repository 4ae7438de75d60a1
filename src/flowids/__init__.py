# SPDX-License-Identifier: Apache-2.0
"""flowids: detect attack traffic in network flow records with a stacked bidirectional LSTM."""

__version__ = "0.1.0"
