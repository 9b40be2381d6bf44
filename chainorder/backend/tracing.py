"""From a JAX function to a chain, and its Jacobian with the optimal plan.

``trace(f, x)`` finds the chain inside ``f`` (see :mod:`chainorder.backend.segments` for
how the jaxpr is cut) and ``analyze_chain`` optimizes it (:mod:`chainorder.backend.analysis`
holds ``analyze``, which also reports the strategy ``jacobian`` takes);
:mod:`chainorder.backend.dropin` holds ``jacobian``, the drop-in for ``jax.jacobian``.
The differentiated arguments are flattened to one vector and the output to
another; the Jacobian is then laid out like ``jax.jacobian``'s (output tree of
input trees).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.chain import Chain
from ..core.dp import cost_table
from ..core.optimize import optimize, optimize_measured_first
from ..core.plan import Plan
from ..core.steps import Objective
from .compressed import COMPRESSION_MARGIN
from .devices import resolve_budget
from .execute import library_mode, run_steps
from .ravel import ravel
from .seedslast import jacfwd_seeds_last
from .segments import Segment, prepare

__all__ = ["trace", "analyze_chain", "Analysis"]


def _split_arguments(args: tuple, argnums: int | Sequence[int]):
    """The differentiated arguments as one flat vector, plus how to rebuild everything."""
    if isinstance(argnums, bool) or not isinstance(argnums, (int, tuple, list)):
        raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
    numbers = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not numbers:
        raise ValueError("argnums must name at least one argument")
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int) or not -len(args) <= number < len(args):
            raise ValueError(
                f"argnums {argnums!r} is out of range for a function called with {len(args)} positional arguments"
            )
    numbers = tuple(number % len(args) for number in numbers)
    chosen = args[numbers[0]] if isinstance(argnums, int) else tuple(args[n] for n in numbers)
    for leaf in jax.tree_util.tree_leaves(chosen):
        dtype = np.dtype(jnp.asarray(leaf).dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):  # bfloat16 is inexact to jnp, not to numpy
            raise TypeError(
                "chainorder.jacobian requires real- or complex-valued inputs (input dtype that is a "
                f"sub-dtype of np.inexact), but got {dtype.name}. If you want to use integer-valued "
                "inputs, use vjp or set allow_int to True."
            )
    vector, unravel = ravel(chosen)
    rest = [a for i, a in enumerate(args) if i not in numbers]
    rest_leaves, rest_tree = jax.tree_util.tree_flatten(rest)

    def rebuild(vector, rest_leaves):
        rest_args = iter(jax.tree_util.tree_unflatten(rest_tree, list(rest_leaves)))
        values = unravel(vector)
        picked = iter((values,) if isinstance(argnums, int) else values)
        return tuple(next(picked) if i in numbers else next(rest_args) for i in range(len(args)))

    return vector, rest_leaves, rebuild, chosen


def _flat_output(f: Callable[..., Any], rebuild: Callable[..., Any], holder: dict) -> Callable[..., Any]:
    def flat_function(vector, *rest_leaves):
        output = f(*rebuild(vector, rest_leaves))
        leaves = jax.tree_util.tree_leaves(output)
        if not leaves or not all(hasattr(leaf, "shape") and hasattr(leaf, "dtype") for leaf in leaves):
            raise TypeError(
                "the function must return an array or a pytree of arrays, got "
                f"{type(output).__name__}"
            )
        flat, _ = ravel(output)
        holder["output"] = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), output)
        return flat

    return flat_function


def trace(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> Chain:
    """The chain of ``f`` at ``args``: layers are segments of its jaxpr.

    The layers' functions map the flattened state before a segment to the
    flattened state after it, with the other arguments held at ``args``.

    Parameters
    ----------
    f : callable
    *args
        Where to trace ``f`` (only shapes and dtypes matter).
    argnums : int or tuple of int
        The differentiated arguments, as in ``jax.jacobian``.

    Returns
    -------
    Chain
        Its layers carry their functions (``fn``) and FMA costs.

    Raises
    ------
    TypeError
        When ``f`` is not callable or a differentiated argument is not a float array.

    See Also
    --------
    analyze, jacobian

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> W1, W2 = jnp.ones((32, 100)), jnp.ones((100, 32))
    >>> chain = trace(lambda x: W2 @ jnp.tanh(W1 @ x), jnp.ones(100))
    >>> chain.dims
    (100, 32, 100)
    """
    traced, vector, rest = _traced_for(f, args, argnums)
    functions = traced.functions(rest)
    return Chain([dataclasses.replace(layer, fn=function) for layer, function in zip(traced.chain, functions)])


def _traced_for(f: Callable[..., Any], args: tuple, argnums: int | Sequence[int]):
    traced, vector, rest, _ = _traced_with_function(f, args, argnums)
    return traced, vector, rest


def _traced_with_function(f: Callable[..., Any], args: tuple, argnums: int | Sequence[int]):
    """:func:`_traced_for`, and the flat function ``(vector, *rest) -> flat output`` it traced."""
    if not callable(f):
        raise TypeError(f"expected a function, got {type(f).__name__}")
    vector, rest, rebuild, _ = _split_arguments(args, argnums)
    flat = _flat_output(f, rebuild, {})
    return prepare(flat, vector, rest), vector, rest, flat


def _vector_dtype(args: tuple, argnums: int | Sequence[int]):
    """The dtype of the differentiated arguments raveled into one vector."""
    return _split_arguments(args, argnums)[0].dtype


@dataclass
class Analysis:
    """What :func:`chainorder.analyze` found: the segments of ``f``, its chain, the optimal plan and
    the strategy ``chainorder.jacobian(f)`` takes (``"plan"``, or a compression or per-example
    plan, with its FMAs in ``strategy_cost``), and what compression would do where the pattern was
    found (``structure``: density, colors against their lower bound, FMAs; taken or not)."""

    chain: Chain
    plan: Plan
    segments: list[Segment]
    notes: list[str]
    strategy: str = "plan"
    strategy_cost: int | None = None
    structure: str | None = None

    def __str__(self) -> str:
        found = f"  {len(self.segments)} segments found in the function"
        lines = [found + ("" if len(self.chain) == len(self.segments) else f", {len(self.chain)} layers")]
        if self.strategy != "plan":
            lines.append(f"  chainorder.jacobian computes it by {self.strategy}")
        if self.structure is not None and self.structure != self.strategy:
            lines.append(f"  the Jacobian's pattern: {self.structure}")
        lines.extend(f"  note: {note}" for note in self.notes)
        header = (
            f"  {'seg':>3} {'in':>7} {'out':>7} {'tangent':>12} {'adjoint':>12} {'edges':>9} {'structure':>11}"
            "  operations / source"
        )
        lines.append(header)
        for segment in self.segments:
            # a sparse segment's JVPs/VJPs preaccumulating it by compression, "explicit" for an affine map
            # followed by an elementwise one; "-" for another dense one
            structure = "explicit" if segment.explicit else "-"
            if segment.colors is not None:
                structure = "/".join(str(count) for count in segment.colors)
            lines.append(
                f"  {segment.index:>3} {segment.in_dim:>7} {segment.out_dim:>7} {segment.tangent_cost:>12,} "
                f"{segment.adjoint_cost:>12,} {segment.edges:>9,} {structure:>11}  {segment.describe()}"
            )
            if segment.source:
                lines.append(f"  {'':>66}at {segment.source}")
        return "\n".join(lines) + "\n\n" + str(self.plan)


def _chosen_plan(chain: Chain, plan: Plan | None, options: dict[str, Any], dtype: Any = "float32") -> Plan:
    """``plan`` when it was made for ``chain``, else the optimal plan under ``options``
    (with no objective given: :func:`~chainorder.core.optimize.optimize_measured_first`);
    a ``memory_limit`` in bytes counts elements of ``dtype``, ``"auto"`` the device's free memory."""
    if plan is None:
        options = resolve_budget(options, dtype)
        if options.get("objective") is None and options.get("parallel") is None:
            given = {name: value for name, value in options.items() if name not in ("objective", "parallel")}
            return _where_structure_pays(chain, lambda chain: optimize_measured_first(chain, **given))
        return _where_structure_pays(chain, lambda chain: optimize(chain, **options))
    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a chainorder.Plan, got {type(plan).__name__}")
    if options:
        raise TypeError(f"give either plan= or optimize options, not both (got {', '.join(sorted(options))})")
    if plan.chain != chain and plan.chain != chain.without_structure():  # the latter: priced without its structure
        raise ValueError(
            f"the plan was made for a chain with dims {list(plan.chain.dims)}, but the function traced at these "
            f"arguments is the chain {list(chain.dims)} (edges {list(chain.edges)})"
        )
    return plan


def _where_structure_pays(chain: Chain, make_plan: Callable[[Chain], Plan]) -> Plan:
    """The plan of ``chain`` with its sparse layers' colors and explicit layers' forms where that is
    :data:`~chainorder.backend.compressed.COMPRESSION_MARGIN` times cheaper (FMAs, or predicted
    time for that objective) than the plan of the chain priced dense, which is taken otherwise:
    a compressed preaccumulation scatters into the layer's Jacobian, which FMAs do not count, and a
    tangent-only plan whose first layer is compressed or explicit no longer runs as ``jax.jacfwd``
    (a traced stencil chain: 0.6% fewer FMAs, 11% slower than ``jax.jacfwd``). Where the dense plan
    counts FMAs, the chain's least FMAs (the cost DP alone, a bound on any plan of it) decide first
    whether the structured plan can pay: a deep square MLP's explicit plans tie by the thousand, and
    breaking those ties cost more than tracing it."""
    if not any(layer.compressed or layer.explicit for layer in chain):
        return make_plan(chain)
    try:
        dense = make_plan(chain.without_structure())
    except ValueError:  # no dense plan fits the memory limit
        return make_plan(chain)
    if dense.objective is Objective.FMA:
        least = cost_table(chain).cost(0, len(chain) - 1)  # no plan of the chain costs less
        if least * COMPRESSION_MARGIN >= dense.cost:
            return dense
    plan = make_plan(chain)
    measure = (lambda p: p.predicted_time) if plan.objective is Objective.TIME else (lambda p: p.cost)
    return plan if measure(plan) * COMPRESSION_MARGIN < measure(dense) else dense


def analyze_chain(
    f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, plan: Plan | None = None, **options: Any
) -> Analysis:
    """Trace ``f`` at ``args`` and optimize its chain (or check ``plan`` against it): the work of
    :func:`chainorder.analyze` without asking which strategy ``chainorder.jacobian`` takes.

    ``options`` go to :func:`chainorder.optimize`; with no ``objective``, the FMA-optimal plan,
    unless the plan of least predicted time is predicted 1.5x faster
    (:func:`~chainorder.core.optimize.optimize_measured_first`).

    >>> import jax.numpy as jnp
    >>> W1, W2 = jnp.ones((8, 200)), jnp.ones((200, 8))
    >>> analyze_chain(lambda x: W2 @ jnp.tanh(W1 @ x), jnp.ones(200)).chain.dims
    (200, 8, 200)
    """
    traced, _, _, _ = _traced_with_function(f, args, argnums)
    chosen = _chosen_plan(traced.chain, plan, options, _vector_dtype(args, argnums))
    return Analysis(traced.chain, chosen, traced.segments, traced.notes)


def _compute(plan: Plan, traced: Any, flat_function: Callable[..., Any]) -> Callable[..., Any]:
    """``(vector, rest) -> (m, n) Jacobian`` with ``plan``: jacfwd (seeds kept last) or jacrev for pure modes."""
    mode = library_mode(plan)
    if mode == "forward":  # jax.jacfwd, its seeds kept last where every primitive has a rule
        return lambda vector, rest: jacfwd_seeds_last(lambda v: flat_function(v, *rest))(vector)
    if mode == "reverse":
        return lambda vector, rest: jax.jacrev(flat_function)(vector, *rest)
    return lambda vector, rest: run_steps(plan, traced.functions(rest), vector)
