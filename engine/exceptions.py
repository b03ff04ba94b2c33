"""Every error ecomscale raises on purpose. The CLI prints these as one line, no traceback.

Errors that recur are written once, by the builders on the classes (``missing_columns``,
``out_of_range``, ``unwritable``), so every stage words them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class EcomscaleError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class ConfigError(EcomscaleError, ValueError):
    """A parameter is out of range or inconsistent."""

    @classmethod
    def out_of_range(cls, name: str, allowed: str, got: object) -> ConfigError:
        """``name must be <allowed>, got <got>``."""
        return cls(f"{name} must be {allowed}, got {got!r}")


class DataValidationError(EcomscaleError, ValueError):
    """Input data breaks the dataset contract (schema, nulls, order, values)."""

    @classmethod
    def missing_columns(
        cls, where: str | Path, missing: Iterable[str], hint: str
    ) -> DataValidationError:
        """``<where>: no column a, b. Hint: <hint>``."""
        return cls(f"{where}: no column {', '.join(missing)}. Hint: {hint}")


class DatasetIOError(EcomscaleError, OSError):
    """A file or folder cannot be read or written."""

    @classmethod
    def unwritable(cls, target: str | Path, problem: str) -> DatasetIOError:
        """``cannot write to <target>: <problem>. Hint: choose another path``."""
        return cls(f"cannot write to {target}: {problem}. Hint: choose another path")


class ModelFitError(EcomscaleError, ValueError):
    """The data cannot identify a model, or its fit did not converge."""
