"""Synthetic e-commerce datasets: realistic, deterministic, with planted personas."""

from synth.config import PERSONAS, PRESETS, SynthConfig, from_preset
from synth.dataset import generate_dataset

__all__ = ["PERSONAS", "PRESETS", "SynthConfig", "from_preset", "generate_dataset"]
