"""Per-user behavioural features: pure lazy queries, and the stage that validates and writes."""

from engine.features.behaviour import CORE_FEATURES, EXTRA_FEATURES, user_features
from engine.features.categories import category_list, share_column
from engine.features.result import FeatureResult, FeaturesConfig
from engine.features.sessions import DEFAULT_SESSION_GAP, sessionize
from engine.features.stage import compute_features, features_stage

__all__ = [
    "CORE_FEATURES",
    "DEFAULT_SESSION_GAP",
    "EXTRA_FEATURES",
    "FeatureResult",
    "FeaturesConfig",
    "category_list",
    "compute_features",
    "features_stage",
    "sessionize",
    "share_column",
    "user_features",
]
