"""Customer lifetime value: lifetimes' rfm summary as a lazy query, BG/NBD and Gamma-Gamma
fitted by maximum likelihood (analytic gradients, grouped rows), and the stage that writes
``OUT/clv/``."""

from engine.clv.bgnbd import BetaGeo
from engine.clv.gamma_gamma import GammaGamma, clv
from engine.clv.rfm import rfm
from engine.clv.stage import ClvConfig, ClvResult, clv_note, clv_stage, clv_tables
from engine.exceptions import ModelFitError  # re-exported: the error the models raise

__all__ = [
    "BetaGeo",
    "ClvConfig",
    "ClvResult",
    "GammaGamma",
    "ModelFitError",
    "clv",
    "clv_note",
    "clv_stage",
    "clv_tables",
    "rfm",
]
