"""The XLA options chainorder compiles a plan's Jacobian with.

On a CPU, a plan whose memory model's peak is large is compiled with XLA's memory-optimizing
scheduler (:func:`plan_compiler_options`). JAX takes ``compiler_options`` on a top-level
``jax.jit`` only (a nested one raises), so they apply where chainorder compiles the program itself,
``plan.jacobian(x)`` called with an array; inside a user's ``jax.jit`` (or ``vmap``) the user's
compilation decides; pass the options to it to get the same program::

    jax.jit(plan.jacobian, compiler_options=chainorder.plan_compiler_options(plan))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ..core.plan import Plan

__all__ = ["compiler_options", "plan_compiler_options", "top_level_jit"]

#: XLA's CPU scheduler that orders a program's operations to keep what is live small. The default
#: one placed the zero blocks that colored preaccumulations scatter into at the program's start: a
#: layer-norm MLP's plan of dense products held 40.1 MiB of temporaries, which from glibc's 32 MiB
#: ceiling are mapped fresh, so every page faulted again each call (10,259 faults, 16.8 ms a call);
#: with this scheduler 24.2 MiB and 4.0 ms (BENCHMARKS.md, "XLA's scheduler").
CPU_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}

#: plans whose memory model's peak is at least this many elements (8 MiB in float32) are compiled
#: with :data:`CPU_OPTIONS`: XLA's temporaries reached 4.7x the model's peak (40.1 MiB against 8.5)
#: where the default scheduler held every scattered block at once, so from here they may pass 32 MiB.
#: Smaller plans keep XLA's default: over three runs of 110 plans the scheduler moved their times
#: both ways by up to 10-25%, the same way each run for a few (the layer-norm MLP's time-optimal plan
#: 1.10-1.14x slower, the U-shape's 0.82-0.87x), 0.99-1.00x in the geometric mean.
LARGE_PEAK = 2**21


def compiler_options(platform: str | None = None) -> dict[str, str] | None:
    """XLA's memory-optimizing scheduler as ``compiler_options`` for ``jax.jit`` on ``platform``
    (default: JAX's default backend): :data:`CPU_OPTIONS` on a CPU, none elsewhere.

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


def plan_compiler_options(plan: Plan) -> dict[str, str] | None:
    """The ``compiler_options`` chainorder compiles ``plan``'s Jacobian with: :func:`compiler_options`
    where the plan's ``peak_memory`` is at least :data:`LARGE_PEAK` elements, none elsewhere.

    >>> from chainorder import Chain, optimize
    >>> plan_compiler_options(optimize(Chain.from_dims([256, 256]))) is None
    True
    """
    return compiler_options() if plan.peak_memory >= LARGE_PEAK else None


def top_level_jit(function: Callable[..., Any], options: dict[str, str] | None) -> Callable[..., Any]:
    """``jax.jit(function)``, compiled with ``options`` where it is called with arrays (it is then the
    top-level program) and without them where its arguments are traced (it is then part of the
    caller's program, which JAX compiles with the caller's options)."""
    plain = jax.jit(function)
    if options is None:
        return plain
    optioned = jax.jit(function, compiler_options=options)

    def call(*args: Any) -> Any:
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args)):
            return plain(*args)
        return optioned(*args)

    call.plain, call.optioned = plain, optioned  # type: ignore[attr-defined]
    return call
