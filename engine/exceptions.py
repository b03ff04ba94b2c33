"""Every error ecomscale raises on purpose. The CLI prints these as one line, no traceback."""

from __future__ import annotations


class EcomscaleError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class ConfigError(EcomscaleError, ValueError):
    """A parameter is out of range or inconsistent."""


class DataValidationError(EcomscaleError, ValueError):
    """Input data breaks the dataset contract (schema, nulls, order, values)."""


class DatasetIOError(EcomscaleError, OSError):
    """A file or folder cannot be read or written."""
