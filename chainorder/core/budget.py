"""Memory budgets as people state them: elements, or bytes as text, converted with the dtype.

The optimizers count memory in elements (see :mod:`chainorder.core.memory`).
``memory_limit=`` also takes bytes as text: ``"512MB"``, ``"2GiB"``, ``"1.5 GB"``,
``"300000B"`` (``KB``/``MB``/``GB``/``TB`` are powers of 1000, ``KiB``/``MiB``/``GiB``/``TiB``
powers of 1024), turned into elements of the Jacobian's dtype, rounding down.
``"auto"`` (the device's free memory) is resolved by the JAX backend, which knows
the device.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

import numpy as np

__all__ = ["budget_elements", "itemsize_of", "UNITS"]

UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_TEXT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*$")
_ITEMSIZES = {"bfloat16": 2, "float16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16}


def itemsize_of(dtype: Any) -> int:
    """Bytes per element of ``dtype`` (a numpy or JAX dtype, or its name).

    >>> itemsize_of("float32"), itemsize_of("bfloat16"), itemsize_of(np.float64)
    (4, 2, 8)
    """
    name = getattr(dtype, "name", None) or getattr(dtype, "__name__", None) or str(dtype)
    if name in _ITEMSIZES:
        return _ITEMSIZES[name]
    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        raise TypeError(f"dtype must be a numpy or JAX dtype (e.g. 'float32'), got {dtype!r}") from None


def budget_elements(limit: Any, dtype: Any = "float32", *, name: str = "memory_limit") -> int | None:
    """``limit`` as a number of elements of ``dtype``: an int is elements already; text is bytes.

    Parameters
    ----------
    limit : int, str or None
    dtype : numpy or JAX dtype, or its name
        Of the Jacobian (default float32).
    name : str
        The option's name, for messages.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        For a limit that is neither an integer nor text.
    ValueError
        For text that does not parse, ``"auto"`` (which needs the device), or a budget of
        less than one element.

    Examples
    --------
    >>> budget_elements("512MB"), budget_elements("2GiB", "float64"), budget_elements(1000)
    (128000000, 268435456, 1000)
    """
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (numbers.Integral, str)):
        raise TypeError(
            f"{name} must be an integer number of elements or bytes as text like '512MB', got {limit!r}"
        )
    if isinstance(limit, numbers.Integral):
        if int(limit) <= 0:
            raise ValueError(f"{name} must be a positive number of elements, got {int(limit)}")
        return int(limit)
    if limit.strip().lower() == "auto":
        raise ValueError(
            f"{name}='auto' means the device's free memory: chainorder.jacobian and chainorder.analyze take it, "
            "optimize() does not know the device"
        )
    match = _TEXT.match(limit[:100])
    if match is None or match.group(2).lower() not in UNITS:
        raise ValueError(
            f"{name} {limit[:40]!r} does not parse: give elements (an int) or bytes as text with a unit of "
            f"{', '.join(unit.upper().replace('I', 'i') for unit in UNITS)}, e.g. '512MB' or '2GiB'"
        )
    number, unit = match.groups()
    total = int(float(number) * UNITS[unit.lower()])
    itemsize = itemsize_of(dtype)
    if total // itemsize < 1:
        raise ValueError(f"{name} {limit!r} is less than one {itemsize}-byte element")
    return total // itemsize
