"""Featurizers per column kind and the pipeline that combines them."""

from . import categorical, datetime, geo, image, numeric, text  # noqa: F401  (register the built-in kinds)
from ._base import FEATURIZERS, Featurizer, RobustScaler, register
from ._models import ModelRef
from .pipeline import FeaturePipeline

__all__ = ["FEATURIZERS", "FeaturePipeline", "Featurizer", "ModelRef", "RobustScaler", "register"]
