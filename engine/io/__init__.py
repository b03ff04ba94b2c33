"""Reading and writing: the native dataset, foreign logs, the one atomic writer, partitioning.

Import from the modules (``engine.io.dataset``, ``engine.io.atomic``, ...): this package
re-exports nothing, so that synth's import of the atomic writer loads nothing more.
"""
