"""``analyze``: a function's chain, its optimal plan, and what ``chainorder.jacobian`` does with it.

The chain and plan come from :func:`chainorder.backend.tracing.analyze_chain`; the strategy is
read from :func:`chainorder.backend.dropin.jacobian` itself (a plan, a compression, or
per-example plans of a batch-separable function), so the report and the drop-in never
disagree: there is one rule, the drop-in's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax

from ..core.plan import Plan
from .dropin import jacobian
from .tracing import Analysis, analyze_chain

__all__ = ["analyze"]


def analyze(
    f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, plan: Plan | None = None, **options: Any
) -> Analysis:
    """Trace ``f`` at ``args``, optimize its chain, and report both.

    Parameters
    ----------
    f : callable
    *args
        Where to trace ``f`` (only shapes and dtypes matter).
    argnums : int or tuple of int
        The differentiated arguments, as in ``jax.jacobian``.
    plan : Plan, optional
        A plan made before for this function's chain (e.g. read with
        :meth:`Plan.from_json`), used instead of optimizing.
    **options
        Passed to :func:`chainorder.optimize` (``strategy``, ``objective``,
        ``tape_limit``, ``memory_limit``, ...). With no ``objective``: the
        FMA-optimal plan, unless the plan of least predicted time on the machine
        profile is predicted 1.5x faster
        (:func:`~chainorder.core.optimize.optimize_measured_first`).

    Returns
    -------
    Analysis
        ``print(analyze(f, x))`` shows each segment's dims, costs and where in
        ``f`` it comes from, then the plan table. With no ``plan`` and no options,
        ``strategy`` and ``strategy_cost`` say what ``chainorder.jacobian(f)`` runs
        and its FMAs: ``"plan"``, a compression (where the Jacobian's pattern is
        sparse enough to cost fewer FMAs), or per-example plans (where ``f`` is
        batch-separable); otherwise ``"plan"``. ``structure`` says what compression
        would do (density, colors against their lower bound, FMAs against the
        strategy's), taken or not; None where the pattern was not looked for or is
        more than half dense.

    Raises
    ------
    ValueError
        When ``plan`` was made for another chain.

    See Also
    --------
    chainorder.jacobian, chainorder.sparsity

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> W1, W2 = jnp.ones((8, 200)), jnp.ones((200, 8))
    >>> report = analyze(lambda x: W2 @ jnp.tanh(W1 @ x), jnp.ones(200))
    >>> report.chain.dims, report.plan.mode, report.strategy
    ((200, 8, 200), 'mixed', 'plan')
    >>> row = lambda x: W2 @ jnp.tanh(W1 @ x)
    >>> analyze(jax.vmap(row), jnp.ones((4, 200))).strategy.split(":")[0]
    'per-example plan'
    """
    analysis = analyze_chain(f, *args, argnums=argnums, plan=plan, **options)
    if plan is not None or options:
        return analysis
    compute = jacobian(f, argnums=argnums)
    jax.eval_shape(compute, *args)
    (signature,) = compute.strategies
    return dataclasses.replace(
        analysis,
        strategy=compute.strategies[signature],
        strategy_cost=compute.costs[signature],
        structure=compute.structures[signature],
    )
