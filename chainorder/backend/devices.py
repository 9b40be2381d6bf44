"""What the device can hold: refusing, before compiling, a plan that cannot fit.

JAX reports a device's memory on GPUs and TPUs (``memory_stats()``); on the CPU
the host's available memory is the limit (``MemAvailable`` of ``/proc/meminfo``
where there is one). A plan whose peak memory (see
:mod:`chainorder.core.memory`) is over it would die in XLA with
RESOURCE_EXHAUSTED after compiling; :func:`check_fits` says so at once, with
both sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..core.plan import Plan

__all__ = ["available_bytes", "check_fits", "jacobian_fits", "resolve_budget"]


def available_bytes(device=None) -> int | None:
    """Bytes free on ``device`` (default: JAX's first device), or None where nobody reports them.

    >>> available_bytes() is None or available_bytes() > 0
    True
    """
    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    if device.platform == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def _gigabytes(count: int) -> str:
    return f"{count / 1e9:.3g} GB"


def check_fits(plan: Plan, dtype, device=None) -> None:
    """Raise MemoryError when ``plan``'s peak memory in ``dtype`` is over what the device has free.

    Parameters
    ----------
    plan : Plan
    dtype : numpy dtype
        Of the Jacobian's entries.
    device : jax.Device, optional

    Raises
    ------
    MemoryError
        Naming the plan's peak, the Jacobian's own size and the memory available, in GB.
    """
    itemsize = np.dtype(dtype).itemsize
    peak = plan.peak_memory * itemsize
    available = available_bytes(device)
    if available is None or peak <= available:
        return
    jacobian = plan.chain.out_dim * plan.chain.in_dim * itemsize
    raise MemoryError(
        f"computing this {plan.chain.out_dim} x {plan.chain.in_dim} Jacobian needs {_gigabytes(peak)} at its peak "
        f"(the Jacobian itself is {_gigabytes(jacobian)}), but only {_gigabytes(available)} are available; "
        "a plan chosen with memory_limit= (elements, or bytes like '2GiB') peaks lower where one exists, and a "
        "Jacobian larger than memory can be computed in blocks into a host array with out= and memory_limit="
    )


def jacobian_fits(rows: int, columns: int, dtype, device=None) -> bool:
    """Whether a ``rows x columns`` Jacobian of ``dtype`` fits in what the device has free
    (True where it reports nothing)."""
    available = available_bytes(device)
    return available is None or rows * columns * np.dtype(dtype).itemsize <= available


def resolve_budget(options: dict[str, Any], dtype) -> dict[str, Any]:
    """``options`` with ``memory_limit="auto"`` replaced by the device's free memory in elements of
    ``dtype``, and ``dtype`` added for a budget in bytes (see :mod:`chainorder.core.budget`).

    Raises
    ------
    ValueError
        For ``"auto"`` where JAX and the host report no free memory.

    >>> resolve_budget({"memory_limit": "1MB"}, np.float32)["dtype"]
    dtype('float32')
    """
    limit = options.get("memory_limit")
    if not isinstance(limit, str):
        return options
    if limit.strip().lower() != "auto":
        return {**options, "dtype": np.dtype(dtype)}
    available = available_bytes()
    if available is None:
        raise ValueError("memory_limit='auto': this device reports no free memory; give the budget, e.g. '2GiB'")
    return {**options, "memory_limit": max(available // np.dtype(dtype).itemsize, 1)}
