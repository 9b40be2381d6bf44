"""``chainorder.jacobian``: a drop-in for ``jax.jacobian`` that computes with the optimal plan.

Same signature (``argnums``, ``has_aux``, ``holomorphic``, ``allow_int``, keyword
arguments passed through to the function), same result (values, shapes,
dtypes, pytree layout), same errors. Per input signature (tree structure,
shapes and dtypes of the array arguments, values of the others) it does, once:

1. ``jax.eval_shape`` of ``jax.jacobian`` itself (or of ``jax.jacfwd`` when JAX
   cannot run the function in reverse mode): JAX raises its own errors for
   invalid uses, and gives the exact structure and dtypes of the result;
2. the analysis: trace the flattened function into segments, price them,
   choose the plan (or check the one given);
3. a check that the plan's peak memory fits the device (:mod:`.devices`);
4. one ``jax.jit`` of the whole computation: flattening the arguments, the
   plan's steps, cutting the matrix into ``jax.jacobian``'s layout, the aux.

Each later call is a lookup and the jitted program's dispatch; under an outer
``jax.jit`` or ``jax.vmap`` it is traced once like any JAX function. What no
plan can improve runs as ``jax.jacobian`` itself: holomorphic Jacobians, complex inputs,
integer inputs under ``allow_int``, empty inputs or outputs, and arguments
that are neither arrays nor hashable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.optimize import NoPlanFits
from ..core.plan import Plan
from .blocks import jacobian_in_blocks
from .calls import CallOptions, FlatCall, Signature, jacobian_blocks, reverse_else_forward
from .compressed import compressed_strategy
from .devices import check_fits, jacobian_fits
from .execute import library_mode
from .perexample import PerExample, block_diagonal, per_example
from .segments import prepare
from .tracing import _chosen_plan, _compute
from .variants import (
    ARRAY_TYPES,
    block_key,
    blockable,
    of_one,
    out_of_core_function,
    sharded_function,
    sparse_function,
)

__all__ = ["jacobian"]


def _expected(options: CallOptions, signature: Signature, reference: Callable[..., Any]) -> Any:
    """``jax.jacobian``'s result as ShapeDtypeStructs (:func:`~chainorder.backend.calls.reverse_else_forward`)."""

    def shaped(jacobian_function):
        def call(*leaves):
            args, kwargs = signature.rebuild(leaves)
            return jacobian_function(*args, **kwargs)

        return jax.eval_shape(call, *signature.shapes())

    argnums = options.numbers[0] if options.single else options.numbers
    forward = jax.jacfwd(options.fun, argnums, has_aux=options.has_aux, holomorphic=options.holomorphic)
    return reverse_else_forward(shaped, reference, forward)


def _runs_as_jax(options: CallOptions, flat: FlatCall, expected: Any) -> bool:
    """Whether no plan can improve on ``jax.jacobian`` here (see the module docstring)."""
    if options.holomorphic:
        return True
    shapes = flat.signature.shapes()
    inputs = jax.tree_util.tree_leaves(flat.chosen(shapes))
    if options.allow_int and any(not jnp.issubdtype(leaf.dtype, jnp.inexact) for leaf in inputs):
        return True
    if any(jnp.issubdtype(leaf.dtype, jnp.complexfloating) for leaf in inputs):
        return True  # a real output of complex inputs: jax.jacobian's is reverse mode's, which JVPs would not give
    blocks = jax.tree_util.tree_leaves(expected[0] if options.has_aux else expected)
    return not blocks or any(math.prod(leaf.shape) == 0 for leaf in blocks) or not inputs


def _layout(matrix: Any, expected: Any, in_shapes: list[tuple[int, ...]]) -> Any:
    """Cut the (m, n) matrix into ``jax.jacobian``'s blocks (:func:`~chainorder.backend.calls.jacobian_blocks`),
    in the dtypes of ``expected``."""
    leaves, tree = jax.tree_util.tree_flatten(expected)
    blocks = []
    for leaf, out_shape, in_shape, row, column in jacobian_blocks(leaves, in_shapes):
        block = matrix[row : row + math.prod(out_shape), column : column + math.prod(in_shape)]
        blocks.append(jnp.reshape(block, leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(tree, blocks)


def _program(flat: FlatCall, compute: Callable[..., Any], expected: Any, leaves: Sequence[Any]) -> Any:
    """The jitted computation: arguments in, ``jax.jacobian``'s result out."""
    leaves = list(leaves)
    matrix = compute(flat.vector(leaves), leaves)
    in_shapes = [tuple(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(flat.chosen(leaves))]
    if not flat.options.has_aux:
        return _layout(matrix, expected, in_shapes)
    aux = flat.call(flat.vector(leaves), leaves)[1]
    return _layout(matrix, expected[0], in_shapes), aux


class _Entry:
    """One input signature's plan and jitted program (``plan`` None: JAX runs it)."""

    def __init__(self, options: CallOptions, signature: Signature, reference, plan, optimize_options) -> None:
        self.plan: Plan | None = None
        self.strategy = "jax.jacobian"
        self.cost: int | None = None  # the strategy's FMAs
        self.structure: str | None = None  # what compression would do, where the pattern was found
        self.program: Callable[..., Any] | None = None
        expected = _expected(options, signature, reference)
        flat = FlatCall(options, signature)
        if _runs_as_jax(options, flat, expected):
            return
        shapes = signature.shapes()
        vector = jax.eval_shape(flat.vector, shapes)
        traced = prepare(flat, vector, shapes)
        self.plan = _chosen_plan(traced.chain, plan, dict(optimize_options), vector.dtype)
        chain = traced.chain
        if plan is None and not optimize_options and jacobian_fits(chain.out_dim, chain.in_dim, vector.dtype):
            # structure, where it pays: colors x one JVP's memory, or one example's plan, besides the result
            split = _per_example(options, signature, expected, self.plan.cost)
            against = self.plan.cost if split is None else split.cost
            found = compressed_strategy(flat, vector, list(shapes), chain, self.plan, against)
            self.structure = None if found is None or found.density > 0.5 else found.what
            if found is not None and found.pays:
                self.strategy, self.cost = found.what, found.cost
                self.program = jax.jit(functools.partial(_program, flat, found.compute, expected))
                return
            if split is not None:
                self.strategy, self.plan, self.cost = split.describe(), split.plan, split.cost
                self.program = jax.jit(functools.partial(_per_example_program, options, signature, split, expected))
                return
        self.strategy, self.cost = "plan", self.plan.cost
        check_fits(self.plan, vector.dtype)
        if _runs_as_jacrev(self.plan, chosen_freely=plan is None and not optimize_options):
            self.program = jax.jit(functools.partial(_reverse_program, options, signature, expected))
            return
        compute = _compute(self.plan, traced, flat)
        self.program = jax.jit(functools.partial(_program, flat, compute, expected))


def _per_example(options: CallOptions, signature: Signature, expected: Any, cost: int) -> PerExample | None:
    """One example's plan, vmapped, for a function of one array argument with one array output
    that is batch-separable along the argument's axis 0, where it costs fewer FMAs than ``cost``."""
    if not options.single or options.has_aux or not hasattr(expected, "shape"):
        return None
    shapes = signature.shapes()
    x = FlatCall(options, signature).chosen(shapes)
    if not hasattr(x, "shape"):
        return None
    split = per_example(functools.partial(_with_argument, options, signature), x, shapes, jacobian)
    return split if split is not None and split.cost < cost else None


def _with_argument(options: CallOptions, signature: Signature, x: Any, *leaves: Any) -> Any:
    """The function at the call's ``leaves`` with the differentiated argument replaced by ``x``."""
    args, kwargs = signature.rebuild(leaves)
    args = list(args)
    args[options.numbers[0] % len(args)] = x
    return options.fun(*args, **kwargs)


def _per_example_program(
    options: CallOptions, signature: Signature, split: PerExample, expected: Any, leaves: Sequence[Any]
) -> Any:
    """``jax.jacobian``'s dense result from the per-example blocks (zeros between examples)."""
    leaves = list(leaves)
    x = FlatCall(options, signature).chosen(leaves)
    return block_diagonal(split.blocks(x, *leaves), split.found).astype(expected.dtype)


def _runs_as_jacrev(plan: Plan, chosen_freely: bool) -> bool:
    """Whether ``plan`` runs as ``jax.jacrev`` of the function itself: it is exactly jacrev's program
    (:func:`~chainorder.backend.execute.library_mode`), or it amounts to reverse mode (no chunks) and
    was ``chosen_freely`` (no plan given, no options such as a tape or memory limit). Its steps then
    split reverse mode only because the split holds less at once (the tie-break among equal costs),
    which ``jax.jacobian``, whose stand-in this is, does not do either, and each step runs as a stage
    of its own: a traced 16-layer MLP with layer norms took 0.53 ms so, jacrev 0.39 ms."""
    if library_mode(plan) == "reverse":
        return True
    return chosen_freely and plan.mode == "reverse" and all(step.chunk is None for step in plan.steps)


def _reverse_program(options: CallOptions, signature: Signature, expected: Any, leaves: Sequence[Any]) -> Any:
    """``jax.jacrev`` of the function itself, in ``jax.jacobian``'s dtypes."""
    argnums = options.numbers[0] if options.single else options.numbers
    args, kwargs = signature.rebuild(leaves)
    result = jax.jacrev(options.fun, argnums, has_aux=options.has_aux)(*args, **kwargs)
    jacobian, shapes = (result[0], expected[0]) if options.has_aux else (result, expected)
    jacobian = jax.tree_util.tree_map(lambda block, shape: block.astype(shape.dtype), jacobian, shapes)
    return (jacobian, result[1]) if options.has_aux else jacobian


def jacobian(
    fun: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
    *,
    plan: Plan | None = None,
    out: np.ndarray | None = None,
    devices: Sequence[Any] | None = None,
    sparse: bool = False,
    **options: Any,
) -> Callable[..., Any]:
    """Like ``jax.jacobian(fun, argnums, has_aux, holomorphic, allow_int)``, computed with the optimal plan.

    The analysis (trace and optimize) runs once per input signature and is
    cached; the Jacobian itself is one jitted program. The result has the value,
    shape, dtype and pytree layout of ``jax.jacobian``'s, invalid uses raise
    what ``jax.jacobian`` raises, keyword arguments go to ``fun`` undifferentiated,
    and it composes with ``jax.jit`` and ``jax.vmap``.

    Parameters
    ----------
    fun : callable
    argnums : int or sequence of int
    has_aux : bool
        ``fun`` returns ``(output, aux)``; the result is ``(jacobian, aux)``.
    holomorphic : bool
        Complex inputs and outputs, ``fun`` holomorphic (computed by ``jax.jacobian``).
    allow_int : bool
        Integer inputs allowed (their blocks are float0, as in JAX).
    plan : Plan, optional
        A plan made before for ``fun``'s chain (``analyze(fun, x).plan``, or read
        back with :meth:`Plan.from_json`); checked against the traced chain.
    out : numpy.ndarray or numpy.memmap, optional
        Compute out of core: the Jacobian (of one array argument, ``argnums`` an
        int, one array output) is written into ``out`` in column or row blocks
        whose plans fit ``memory_limit`` (see :mod:`chainorder.backend.blocks`), and
        the call returns ``out``. Host-driven: not under ``jax.jit``.
        Without ``out``, when no plan of the whole fits ``memory_limit``, a call
        outside ``jax.jit`` allocates the Jacobian on the device and fills it in
        blocks whose plans fit the rest of the budget (chunked seeds).
    devices : list of jax.Device, or jax.sharding.Mesh, optional
        Shard the seeds: each device computes one block of columns (or rows), with
        its own optimal plan, under ``jax.shard_map``; the result is sharded over
        the devices (see :mod:`chainorder.backend.sharding`). One array argument
        (``argnums`` an int), one array output.
    sparse : bool
        Return ``jax.jacobian``'s result with a ``jax.experimental.sparse.BCOO`` for each
        block (same pytree, shapes and dtypes; ``todense()`` gives jax's block): for a
        batch-separable function of one array whose examples' Jacobians are dense, the
        per-example blocks as a batched BCOO (:mod:`chainorder.backend.perexample`);
        otherwise by compression, the pattern read off the jaxpr, one JVP (or VJP) per
        color (:mod:`chainorder.backend.sparseresult`). Any ``argnums``; arrays or pytrees
        of arrays.
    **options
        Passed to :func:`chainorder.optimize` (``strategy``, ``objective``,
        ``tape_limit``, ``memory_limit``, ...). With no ``objective``: the
        FMA-optimal plan, unless the plan of least predicted time on the machine
        profile is predicted 1.5x faster
        (:func:`~chainorder.core.optimize.optimize_measured_first`).

    Returns
    -------
    callable
        ``jacobian(fun)(*args, **kwargs)``; its ``plans`` attribute maps each
        input signature to the plan used (None where ``jax.jacobian`` ran; one example's
        plan for per-example plans), ``strategies`` to what ran (the plan, a compression,
        per-example plans of a batch-separable function), ``costs`` to its FMAs, and
        ``structures`` to what compression would do (density, colors against their lower
        bound, FMAs), taken or not (None where the pattern was not looked for or is more than half
        dense).

    Raises
    ------
    TypeError, ValueError
        As ``jax.jacobian``: a non-callable ``fun``, bad ``argnums``, integer or
        complex inputs or outputs without the option that allows them.
    MemoryError
        Before compiling, when the plan's peak is over the device's free memory.

    See Also
    --------
    chainorder.analyze : the segments found and the plan, printed.
    chainorder.optimize : the options.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> W1, W2 = jnp.ones((4, 50)), jnp.ones((50, 4))
    >>> f = lambda x: jnp.tanh(W2 @ jnp.sin(W1 @ x))
    >>> J = jacobian(f)(jnp.ones(50) / 50)
    >>> J.shape, bool(jnp.allclose(J, jax.jacobian(f)(jnp.ones(50) / 50), atol=1e-6))
    ((50, 50), True)
    """
    reference = jax.jacobian(fun, argnums, has_aux=has_aux, holomorphic=holomorphic, allow_int=allow_int)
    if out is not None:
        return out_of_core_function(fun, argnums, (has_aux, holomorphic, allow_int, plan), out, options, jacobian)
    if sparse:
        return sparse_function(fun, argnums, (has_aux, holomorphic, allow_int, plan), jacobian)
    if devices is not None:
        return sharded_function(fun, argnums, (has_aux, holomorphic, allow_int, plan), devices, options, jacobian)
    if plan is not None and not isinstance(plan, Plan):
        raise TypeError(f"plan must be a chainorder.Plan, got {type(plan).__name__}")
    numbers = _argnums(argnums)
    settings = CallOptions(fun, numbers, isinstance(argnums, int), has_aux, holomorphic, allow_int)
    entries: dict[Signature, _Entry] = {}

    def compute(*args: Any, **kwargs: Any) -> Any:
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        signature = Signature.of(leaves, tree, numbers)
        entry = entries.get(signature) if signature is not None else None
        if entry is None and signature is not None:
            entry = entries[signature] = _Entry(settings, signature, reference, plan, options)
        if entry is None or entry.program is None:
            return reference(*args, **kwargs)
        return entry.program([leaves[position] for position in signature.dynamic])

    # arrays only: jax.jit's own dispatch checks the signature, and the analysis runs while it traces
    arrays_only = jax.jit(compute)

    blocked: dict[Hashable, Callable] = {}  # signatures no plan fits: their blocked programs

    @functools.wraps(fun)
    def jacobian_of_fun(*args: Any, **kwargs: Any) -> Any:
        if blocked:  # only calls no plan fitted pay for the lookup
            key = block_key(args, kwargs)
            if key in blocked:
                return blocked[key](args[0])
        try:
            if not kwargs and all(type(arg) in ARRAY_TYPES for arg in args):
                return arrays_only(*args)
            return compute(*args, **kwargs)
        except NoPlanFits as error:
            if not blockable(argnums, (has_aux, holomorphic, allow_int, plan), args):
                if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args)):
                    error.add_note(
                        "chainorder.jacobian called outside jax.jit and jax.vmap computes a Jacobian no plan fits "
                        "in blocks whose plans fit (one array argument)"
                    )
                raise
        program = jacobian_in_blocks(of_one(fun, argnums, args, kwargs), args[argnums], options, jacobian)
        key = block_key(args, kwargs)
        if key is not None:  # one array argument: nothing else is closed over, so it can be kept
            blocked[key] = program
        return program(args[argnums])

    jacobian_of_fun.plans = _Plans(entries)  # type: ignore[attr-defined]
    jacobian_of_fun.strategies = _Plans(entries, "strategy")  # type: ignore[attr-defined]
    jacobian_of_fun.costs = _Plans(entries, "cost")  # type: ignore[attr-defined]
    jacobian_of_fun.structures = _Plans(entries, "structure")  # type: ignore[attr-defined]
    return jacobian_of_fun


class _Plans(Mapping):
    """``{signature: plan}`` of a jacobian function, read from its cache (None: ``jax.jacobian`` ran);
    with ``attribute="strategy"``, what ran: ``"plan"``, ``"jax.jacobian"``, the compression or
    the per-example plan used; with ``attribute="cost"``, its FMAs (None where JAX ran); with
    ``attribute="structure"``, the pattern's density, colors and compressed cost, whether or not
    compression ran (None where it was not looked for, or found dense)."""

    def __init__(self, entries: dict, attribute: str = "plan") -> None:
        self._entries = entries
        self._attribute = attribute

    def __getitem__(self, signature: Any) -> Any:
        return getattr(self._entries[signature], self._attribute)

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _argnums(argnums: Any) -> tuple[int, ...]:
    """The argument numbers; () for a malformed ``argnums`` (``jax.jacobian`` then raises its error)."""
    if isinstance(argnums, int) and not isinstance(argnums, bool):
        return (argnums,)
    try:
        return tuple(number for number in argnums if isinstance(number, int) and not isinstance(number, bool))
    except TypeError:
        return ()
