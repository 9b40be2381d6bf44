"""The XLA options chainorder compiles its own programs with.

JAX takes ``compiler_options`` on a top-level ``jax.jit`` only (a nested one raises), so they apply
where chainorder compiles the program itself: ``plan.jacobian(x)`` and ``chainorder.jacobian(f)(x)``
called with arrays. Inside a user's ``jax.jit`` (or ``vmap``) the user's compilation decides; pass
:func:`compiler_options` to it to get the same program::

    jax.jit(chainorder.jacobian(f), compiler_options=chainorder.compiler_options())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

__all__ = ["compiler_options", "top_level_jit"]

#: XLA's CPU scheduler that orders a program's operations to keep what is live small. The default
#: one placed the zero blocks that colored preaccumulations scatter into at the program's start: a
#: layer-norm MLP's plan of dense products held 40.1 MiB of temporaries, which from glibc's 32 MiB
#: ceiling are mapped fresh, so every page faulted again each call (10,259 faults, 16.8 ms a call);
#: with this scheduler 24.2 MiB, no faults, 3.98 ms (BENCHMARKS.md, "XLA's scheduler").
CPU_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def compiler_options(platform: str | None = None) -> dict[str, str] | None:
    """The ``compiler_options`` chainorder passes to ``jax.jit`` for ``platform`` (default: JAX's
    default backend): the memory-optimizing scheduler on a CPU, none elsewhere.

    Parameters
    ----------
    platform : str, optional
        ``"cpu"``, ``"gpu"``, ``"tpu"``.

    Returns
    -------
    dict or None
        For ``jax.jit(..., compiler_options=...)``.

    Examples
    --------
    >>> compiler_options("cpu")
    {'xla_cpu_scheduler_type': 'CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED'}
    >>> compiler_options("gpu") is None
    True
    """
    return dict(CPU_OPTIONS) if (platform or jax.default_backend()) == "cpu" else None


def top_level_jit(function: Callable[..., Any]) -> Callable[..., Any]:
    """``jax.jit(function)``, compiled with :func:`compiler_options` where it is called with arrays
    (it is then the top-level program) and without them where its arguments are traced (it is then
    part of the caller's program, which JAX compiles with the caller's options)."""
    plain = jax.jit(function)
    options = compiler_options()
    if options is None:
        return plain
    optioned = jax.jit(function, compiler_options=options)

    def call(*args: Any) -> Any:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args)):
            return plain(*args)
        return optioned(*args)

    call.plain, call.optioned = plain, optioned  # type: ignore[attr-defined]
    return call
