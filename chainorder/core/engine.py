"""The core's one door to an execution backend, which it never imports.

:meth:`Chain.from_functions`, ``Chain.__call__``, :meth:`Plan.jacobian` and
:meth:`Plan.validate` need JAX; the analysis core does not. The package's
``__init__`` registers a loader for :mod:`chainorder.backend` here, and these
methods ask :func:`backend` for it on first use. The core thus names no backend
module, and the import graph stays acyclic: ``backend -> core``, never back.

A backend is any object with ``chain_from_functions(functions, x0)``,
``apply_chain(chain, x)``, ``plan_jacobian(plan, x, out=None, memory_limit=None, devices=None)``,
``validate_plan(plan, x)`` and ``machine_profile()`` (the profile of the
device it runs on; :func:`machine_profile` falls back to the analytic CPU
default when no backend can load).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .profile import MachineProfile, default_profile

__all__ = ["register_backend", "backend", "machine_profile"]

_loader: Callable[[], Any] | None = None
_loaded: Any = None


def register_backend(loader: Callable[[], Any]) -> None:
    """Set the function that imports and returns the execution backend.

    Parameters
    ----------
    loader : callable
        Called once, on first use, with no arguments; returns the backend.

    Examples
    --------
    >>> import chainorder  # registers chainorder.backend
    >>> callable(_loader)
    True
    """
    global _loader, _loaded
    _loader, _loaded = loader, None


def backend() -> Any:
    """The execution backend, loaded on first use.

    Raises
    ------
    ImportError
        When none is registered or it cannot load (JAX missing), with what to install.
    """
    global _loaded
    if _loaded is None:
        if _loader is None:
            raise ImportError("no execution backend is registered; import chainorder (not chainorder.core) first")
        try:
            _loaded = _loader()
        except ImportError as error:
            raise ImportError(f"executing plans needs JAX: pip install 'chainorder[jax]' ({error})") from error
    return _loaded


def machine_profile() -> MachineProfile:
    """The profile of the device plans run on: the backend's (measured or its platform's
    default), or the analytic CPU default when no backend can load (no JAX).

    >>> machine_profile().gemm_peak > 0
    True
    """
    try:
        loaded = backend()
    except ImportError:
        return default_profile("cpu")
    return loaded.machine_profile()
