# SPDX-License-Identifier: Apache-2.0
"""Preprocessing fitted on training flows only and saved as plain JSON.

It fixes the feature list, drops features that are constant in the training part, repairs
non-finite values by one rule, and standardises. Prediction loads the JSON and only ever
calls :meth:`Preprocessor.transform`: nothing is refitted on the flows being scored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from flowids.data.schema import FLOWIDS
from flowids.data.validity import ValidityPolicy
from flowids.errors import DataError, MissingFeaturesError, RunRecordError

logger = logging.getLogger(__name__)

FORMAT = "flowids-preprocessing/1"

NON_FINITE_RULE = (
    "NaN and missing -> 0; +Infinity -> the largest finite training value of the feature; "
    "-Infinity -> the smallest finite training value"
)


class Preprocessor:
    """Feature selection, non-finite repair and standardisation of flow features.

    Attributes (after :meth:`fit`)
    -------------------------------
    feature_names_in_ : list of str
        Canonical features seen at fit time.
    feature_names_ : list of str
        Features the model receives, in order: ``feature_names_in_`` less constant ones.
    constant_features_ : list of str
        Features with at most one distinct finite value in the training flows.
    posinf_values_, neginf_values_ : dict of str to float
        Replacement for +/-Infinity per feature, from the training flows.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation parameters (population standard deviation; 1 where it is 0).
    dialects_ : list of str
        Dialects (producers) of the training files.
    validity_ : dict of str to str
        The validity policy the training flows were read with (action per rule); prediction
        reads flows with the same policy unless told otherwise.

    Notes
    -----
    NaN becomes 0 because CICFlowMeter writes NaN for 0/0 rates (no bytes over a zero
    duration). Infinity comes from a non-zero count over a zero duration: the fastest rate seen
    in training is the closest finite stand-in.
    """

    def fit(
        self,
        features: pd.DataFrame,
        dialects: list[str] | None = None,
        validity: ValidityPolicy | None = None,
    ) -> Preprocessor:
        """Learn every parameter from the training flows.

        Parameters
        ----------
        features : DataFrame of shape (n_flows, n_features)
            Canonical features of the training part only.
        dialects : list of str, optional
            Producers of the training files, recorded for checks at prediction.
        validity : ValidityPolicy, optional
            The policy the training flows were read with (default: the default policy).

        Raises
        ------
        DataError
            If there is no training flow, or every feature is constant in them (one flow,
            or copies of one flow).
        """
        if len(features) == 0:
            raise DataError("cannot fit preprocessing on 0 training flows")

        values = features.to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        masked = np.where(finite, values, np.nan)
        with np.errstate(all="ignore"):
            finite_max = np.nanmax(np.where(finite, values, -np.inf), axis=0)
            finite_min = np.nanmin(np.where(finite, values, np.inf), axis=0)
        finite_max = np.where(np.isfinite(finite_max), finite_max, 0.0)
        finite_min = np.where(np.isfinite(finite_min), finite_min, 0.0)
        distinct = pd.DataFrame(masked, columns=features.columns).nunique(dropna=True)

        self.feature_names_in_ = list(features.columns)
        self.constant_features_ = [name for name in features.columns if distinct[name] <= 1]
        self.feature_names_ = [n for n in features.columns if n not in self.constant_features_]
        self.posinf_values_ = dict(zip(features.columns, finite_max.tolist(), strict=True))
        self.neginf_values_ = dict(zip(features.columns, finite_min.tolist(), strict=True))
        self.dialects_ = sorted(set(dialects or []))
        self.validity_ = (validity or ValidityPolicy()).to_dict()
        if not self.feature_names_:
            raise DataError(
                f"every one of the {len(features.columns)} features is constant in the "
                f"{len(features):,} training flows, so nothing is left to learn from; expected "
                "training flows that differ (more flows, or files of more than one class)"
            )

        repaired, _ = self._repair(features[self.feature_names_])
        scaler = StandardScaler().fit(repaired)
        self.mean_ = scaler.mean_
        self.scale_ = scaler.scale_
        logger.info(
            "fitted preprocessing on %s training flows: %d features kept, %d constant dropped",
            f"{len(features):,}",
            len(self.feature_names_),
            len(self.constant_features_),
        )
        return self

    def _repair(self, features: pd.DataFrame) -> tuple[np.ndarray, Counter]:
        """Apply the non-finite rule; return float64 values and repairs per feature."""
        values = features.to_numpy(dtype=np.float64, copy=True)
        counts: Counter = Counter()
        for j, name in enumerate(features.columns):
            column = values[:, j]
            nan = np.isnan(column)
            posinf = np.isposinf(column)
            neginf = np.isneginf(column)
            if nan.any() or posinf.any() or neginf.any():
                column[nan] = 0.0
                column[posinf] = self.posinf_values_[name]
                column[neginf] = self.neginf_values_[name]
                counts[name] = int(nan.sum() + posinf.sum() + neginf.sum())
        return values, counts

    def check_features(self, columns: list[str], source: str) -> None:
        """Raise MissingFeaturesError if ``columns`` lacks a feature the model needs."""
        missing = [name for name in self.feature_names_ if name not in columns]
        if missing:
            raise MissingFeaturesError(
                f"{source}: lacks {len(missing)} feature(s) the trained model needs: "
                f"{', '.join(missing)}. Found {len(columns)} feature(s): {', '.join(columns)}"
            )

    @property
    def validity(self) -> ValidityPolicy:
        """The validity policy saved with this preprocessing."""
        return ValidityPolicy.from_dict(getattr(self, "validity_", None))

    def check_dialects(self, dialects: list[str], source: str, allow_other: bool) -> None:
        """Refuse flows from a producer the model was not trained on, unless allowed.

        The same header name can hold different values across producers (units, subflow and
        window definitions), so scoring them silently would mislead.
        """
        other = [d for d in dialects if d != FLOWIDS and d not in self.dialects_]
        if not other or not self.dialects_:
            return
        message = (
            f"{source}: flow records written by {', '.join(other)}, but the model was trained "
            f"on {', '.join(self.dialects_)}"
        )
        if not allow_other:
            raise DataError(
                message + ". The same feature can mean different values across producers; "
                "pass --allow-other-producer to score them anyway"
            )
        logger.warning("%s; scoring anyway as asked", message)

    def transform(self, features: pd.DataFrame, source: str = "input") -> np.ndarray:
        """Select, repair and standardise features with the fitted parameters.

        Parameters
        ----------
        features : DataFrame of shape (n_flows, n_any_features)
            Canonical features; columns are chosen by name, extra ones ignored.
        source : str
            Where the flows come from, for error messages.

        Returns
        -------
        ndarray of float32, shape (n_flows, n_features)

        Raises
        ------
        MissingFeaturesError
            If a feature the model needs is absent.
        """
        self.check_features(list(features.columns), source)
        repaired, counts = self._repair(features[self.feature_names_])
        if counts:
            logger.debug(
                "%s: repaired %s non-finite value(s) (%s)",
                source,
                f"{sum(counts.values()):,}",
                ", ".join(f"{name} {n}" for name, n in counts.most_common(5)),
            )
        self.last_repairs_ = counts
        scaled = (repaired - self.mean_) / self.scale_
        return scaled.astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-safe parameters; floats keep full precision."""
        return {
            "format": FORMAT,
            "features_in": self.feature_names_in_,
            "features": self.feature_names_,
            "constant_features_dropped": self.constant_features_,
            "dialects": self.dialects_,
            "validity": self.validity.to_dict(),
            "non_finite_rule": NON_FINITE_RULE,
            "posinf_values": self.posinf_values_,
            "neginf_values": self.neginf_values_,
            "scaling": "standard",
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "preprocessing") -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        if data.get("format") != FORMAT:
            raise RunRecordError(
                f"{source}: format {data.get('format')!r} is not {FORMAT!r}; this run was "
                "written by another flowids version"
            )
        self = cls()
        try:
            self.feature_names_in_ = list(data["features_in"])
            self.feature_names_ = list(data["features"])
            self.constant_features_ = list(data["constant_features_dropped"])
            self.dialects_ = list(data.get("dialects", []))
            # Runs saved before the policy was recorded were read with the default policy.
            self.validity_ = ValidityPolicy.from_dict(data.get("validity")).to_dict()
            self.posinf_values_ = {k: float(v) for k, v in data["posinf_values"].items()}
            self.neginf_values_ = {k: float(v) for k, v in data["neginf_values"].items()}
            self.mean_ = np.asarray(data["mean"], dtype=np.float64)
            self.scale_ = np.asarray(data["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunRecordError(
                f"{source}: incomplete or damaged preprocessing ({type(exc).__name__}: {exc}); "
                "train the run again"
            ) from None

        n = len(self.feature_names_)
        problems = [
            f"{what} has {len(values)} value(s)"
            for what, values in (("mean", self.mean_), ("scale", self.scale_))
            if values.shape != (n,)
        ]
        problems += [
            f"no non-finite replacement for {name}"
            for name in self.feature_names_
            if name not in self.posinf_values_ or name not in self.neginf_values_
        ]
        if not np.all(np.isfinite(self.scale_)) or np.any(self.scale_ == 0):
            problems.append("a scale is zero or not finite")
        if problems:
            raise RunRecordError(
                f"{source}: preprocessing for {n} feature(s) is inconsistent: "
                f"{'; '.join(problems)}; train the run again"
            )
        return self

    def save(self, path: Path) -> None:
        """Write the parameters as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        """Read parameters written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunRecordError(f"{path}: no preprocessing file (is this a run?)") from None
        except json.JSONDecodeError as exc:
            raise RunRecordError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))
