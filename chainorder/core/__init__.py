"""The analysis core: chains, the cost and memory models, the dynamic programs, plans.

numpy and networkx only: nothing here imports jax or matplotlib, not even
lazily (executing a plan goes through :mod:`chainorder.core.engine`).

==================  ==================================================================
module              what it holds
==================  ==================================================================
``chain``           :class:`Layer`, :class:`Chain` (a networkx path graph on demand)
``steps``           :class:`StepKind` (the table of step kinds), :class:`Step`, :class:`Objective`
``numbers``         the exact-integer dtype chooser, range maxima
``costs``           the cost model (FMAs), scalar and array forms
``memory``          the memory model (elements), Sethi-Ullman, ordering steps for memory
``tree``            the post-order walk every plan reader uses
``profile``         :class:`MachineProfile`: a device's rates, analytic defaults
``timing``          predicted seconds of steps and plans (:class:`TimeModel`)
``dp``              the cost-then-memory dynamic program
``timedp``          the dynamic program for least predicted time
``budget``          memory budgets in elements or bytes as text
``blocking``        a Jacobian in column or row blocks, each block a chain of its own
``coloring``        column or row colorings of a sparse pattern (networkx greedy coloring)
``pareto``          the exact cost/memory Pareto dynamic program
``schedule``        a plan's steps on T threads: task trees, list scheduling, checks
``schedulebounds``  lower bounds on a task tree's makespan (tails, heads, pairs, energy)
``schedulesearch``  the least makespan of one plan (branch and bound over start orders)
``makespan``        the plan and schedule of least makespan on T threads (branch and bound)
``optimize``        :func:`optimize`, :func:`pareto`, pure forward and reverse plans
``checks``          validation of options and of steps
``plan``            :class:`Plan`: an immutable, comparable, serializable value
``planjson``        reading plans back from JSON
``report``          the printed plan table and bracketing
``sample``          random valid plans
``engine``          the seam to an execution backend
==================  ==================================================================
"""

from .chain import Chain
from .costs import CostModel, forward_cost, reverse_cost
from .layer import Layer
from .memory import MemoryModel, peak_memory
from .optimize import optimize, pareto
from .plan import Plan
from .profile import MachineProfile
from .steps import Objective, Step, StepKind

__all__ = [
    "Chain",
    "CostModel",
    "Layer",
    "MachineProfile",
    "MemoryModel",
    "Objective",
    "Plan",
    "Step",
    "StepKind",
    "forward_cost",
    "optimize",
    "pareto",
    "peak_memory",
    "reverse_cost",
]
