"""chainorder: the cheapest way to compute a Jacobian of a function chain, and computing it.

Three layers, one folder each:

``chainorder.core``
    The analysis core: chains, the cost and memory models, the dynamic programs,
    plans. numpy and networkx only; it never imports jax or matplotlib.
``chainorder.backend``
    JAX: executing plans, counting a function's FMAs, cutting jaxprs into
    segments, ``trace``/``analyze``/``jacobian``. Imports the core.
``chainorder.front``
    Figures, the command line, the benchmark zoo. Imports both.

The names below are the public API. Those that need jax or matplotlib load on
first use, so that ``import chainorder`` stays fast and works without them.

>>> from chainorder import Chain, optimize
>>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
>>> round(plan.speedup, 2)
9.91
"""

from .core import (
    Chain,
    CostModel,
    Layer,
    MachineProfile,
    MemoryModel,
    Objective,
    Plan,
    Step,
    StepKind,
    forward_cost,
    optimize,
    pareto,
    peak_memory,
    reverse_cost,
)
from .core.engine import register_backend
from .core.sample import random_plan

__version__ = "0.1.0"


def _load_backend():
    from . import backend

    return backend


register_backend(_load_backend)

# the parts that need jax or matplotlib load on first use (PEP 562)
_LAZY = {
    "trace": "backend",
    "analyze": "backend",
    "jacobian": "backend",
    "calibrate": "backend",
    "compiler_options": "backend",
    "plan_compiler_options": "backend",
    "sparsity": "backend",
    "machine_profile": "backend",
    "plot_tradeoff": "front.plot",
    "plot_plan": "front.plot",
    "plot_schedule": "front.plot",
    "plot_sparsity": "front.sparseplot",
    "plot_fidelity": "front.fidelity",
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
    "Objective",
    "Plan",
    "Step",
    "StepKind",
    "analyze",
    "calibrate",
    "compiler_options",
    "forward_cost",
    "jacobian",
    "machine_profile",
    "MachineProfile",
    "optimize",
    "pareto",
    "peak_memory",
    "plan_compiler_options",
    "plot_fidelity",
    "plot_plan",
    "plot_schedule",
    "plot_sparsity",
    "plot_tradeoff",
    "random_plan",
    "reverse_cost",
    "sparsity",
    "trace",
    "__version__",
]
