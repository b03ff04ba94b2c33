"""Synthetic e-commerce datasets: realistic, deterministic, with planted personas."""

from synth.config import CONFIG_PRESETS, PERSONAS, ExperimentSpec, SynthConfig, from_preset
from synth.dataset import generate_dataset

__all__ = [
    "PERSONAS",
    "CONFIG_PRESETS",
    "ExperimentSpec",
    "SynthConfig",
    "from_preset",
    "generate_dataset",
]
