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


# the parts that need jax or matplotlib load on first use, so that the analysis
# core imports in milliseconds
_LAZY = {
    "trace": "tracing",
    "analyze": "tracing",
    "jacobian": "tracing",
    "plot_tradeoff": "plot",
    "plot_plan": "plot",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'chainorder' has no attribute {name!r}")


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
