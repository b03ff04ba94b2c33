"""Arrow arrays from NumPy buffers, without ``pa.array``.

``pa.array`` checks its input against pandas types, and so imports pandas (when installed)
on its first call in a process: ~0.2 s for every generator worker, a third of a part's
work at the ci size. These helpers build the same arrays from buffers (zero-copy for
numbers), which never looks at pandas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def numbers(
    values: np.ndarray, type_: pa.DataType | None = None, null: np.ndarray | None = None
) -> pa.Array:
    """A numeric (or timestamp) array over ``values``; ``null`` marks the missing rows."""
    values = np.ascontiguousarray(values)
    type_ = type_ or pa.from_numpy_dtype(values.dtype)
    validity = None
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
    return pa.Array.from_buffers(type_, values.size, [validity, pa.py_buffer(values)])


def strings(names: Sequence[str]) -> pa.Array:
    """A large_string array of ``names`` (meant for short lists: one Python string each)."""
    encoded = [name.encode() for name in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    return pa.LargeStringArray.from_buffers(
        len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))
    )


def dictionary(codes: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray:
    """``names[codes]`` as a dictionary array (integer codes of the dtype given)."""
    return pa.DictionaryArray.from_arrays(numbers(codes), strings(names))


def decoded(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """``names[codes]`` as a large_string array, without a Python string per row."""
    return dictionary(codes.astype(np.int32), names).dictionary_decode()
