"""Featurizers per column kind and the pipeline that combines them."""

from . import categorical, datetime, numeric  # noqa: F401  (register the built-in kinds)
from ._base import FEATURIZERS, Featurizer, RobustScaler, register
from .pipeline import FeaturePipeline

__all__ = ["FEATURIZERS", "FeaturePipeline", "Featurizer", "RobustScaler", "register"]
