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
from .optimize import optimize
from .plan import Plan, Step

__version__ = "0.1.0"

__all__ = [
    "Chain",
    "CostModel",
    "Layer",
    "Plan",
    "Step",
    "forward_cost",
    "optimize",
    "reverse_cost",
    "__version__",
]
