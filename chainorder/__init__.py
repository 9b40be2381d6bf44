"""chainorder: the cheapest way to compute a Jacobian of a function chain, and computing it.

The analysis core (:mod:`chain`, :mod:`costs`, :mod:`optimize`, :mod:`plan`)
imports neither jax nor matplotlib; :mod:`execute` needs jax.

>>> from chainorder import Chain, optimize
>>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
>>> round(plan.speedup, 2)
9.91
"""

from .chain import Chain, Layer
from .costs import CostModel, forward_cost, reverse_cost
from .memory import MemoryModel, peak_memory
from .optimize import optimize, pareto
from .plan import Plan, Step

__version__ = "0.1.0"


def trace(*args, **kwargs):
    """See :func:`chainorder.tracing.trace` (needs jax)."""
    from .tracing import trace as run

    return run(*args, **kwargs)


def analyze(*args, **kwargs):
    """See :func:`chainorder.tracing.analyze` (needs jax)."""
    from .tracing import analyze as run

    return run(*args, **kwargs)


def jacobian(*args, **kwargs):
    """See :func:`chainorder.tracing.jacobian` (needs jax): like ``jax.jacobian``, with the optimal plan."""
    from .tracing import jacobian as run

    return run(*args, **kwargs)


def plot_tradeoff(*args, **kwargs):
    """See :func:`chainorder.plot.plot_tradeoff` (needs matplotlib)."""
    from .plot import plot_tradeoff as plot

    return plot(*args, **kwargs)


def plot_plan(*args, **kwargs):
    """See :func:`chainorder.plot.plot_plan` (needs matplotlib)."""
    from .plot import plot_plan as plot

    return plot(*args, **kwargs)

__all__ = [
    "Chain",
    "CostModel",
    "Layer",
    "MemoryModel",
    "Plan",
    "Step",
    "analyze",
    "jacobian",
    "trace",
    "forward_cost",
    "optimize",
    "pareto",
    "plot_plan",
    "plot_tradeoff",
    "peak_memory",
    "reverse_cost",
    "__version__",
]
