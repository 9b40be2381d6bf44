"""From a JAX function to a chain: cut its jaxpr where the live state is small.

``trace(f, x)`` walks the jaxpr of ``f`` (differentiated argument flattened to
one vector, everything else an input that is held constant, the output
flattened to one vector):

1. Calls to jitted functions (``jit``/``pjit``, ``closed_call``, ``core_call``)
   are inlined, recursively, so that a model wrapped in ``jax.jit`` splits too.
   Every other equation (``scan``, ``while``, ``cond``, ``custom_jvp_call``,
   ``custom_vjp_call``, ...) stays one unit: a loop body is never split.
2. An equation is *active* when it depends on the differentiated input; the
   others (weights, shapes, constants) are evaluated once per call, outside the
   chain.
3. Between two equations the *state* is the set of active values computed
   before and used after (or returned). A place is a valid cut when that state
   holds only floating-point arrays. Along the program the state's size runs
   in stretches of equal size (an MLP layer: matmul, bias, activation); the
   cut goes at the end of each stretch, and a cut whose state holds several
   arrays and is larger than its neighbours' (inside a residual block, where
   the skip and the branch are both alive) is dropped.
4. Each stretch between cuts becomes a :class:`~chainorder.Layer` whose ``fn``
   maps the flattened state before to the flattened state after, with dims the
   state sizes and costs from :func:`chainorder.opcount.layer_costs`.

If the program cannot be cut (it has side effects, or no valid cut), or the
analysis fails, the whole function becomes one opaque segment: still correct,
just not split, and the report says why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .chain import Chain, Layer
from .execute import library_mode, run_steps
from .opcount import FREE_PRIMITIVES, layer_costs
from .optimize import optimize
from .plan import Plan

__all__ = ["trace", "analyze", "jacobian", "Analysis", "Segment"]

_INLINED = {"pjit", "jit", "closed_call", "core_call"}


@dataclass
class _Op:
    equation: Any
    inputs: list  # variable ids, or ("literal", value)
    outputs: list[int]
    active: bool = False


@dataclass
class Segment:
    """A stretch of the program that became one layer."""

    index: int
    in_dim: int
    out_dim: int
    primitives: list[str]
    source: str
    tangent_cost: int = 0
    adjoint_cost: int = 0
    tape: int = 0

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for name in self.primitives:
            counts[name] = counts.get(name, 0) + 1
        ops = ", ".join(f"{name}" + (f" x{count}" if count > 1 else "") for name, count in counts.items())
        return ops or "(no active operations)"


@dataclass
class _Program:
    """The flattened, inlined program with its cut into segments."""

    ops: list[_Op]
    avals: dict[int, Any]
    input_id: int
    other_input_ids: list[int]
    constants: dict[int, Any]  # closed-over values of the jaxprs
    output_id: int
    cuts: list[int]  # op positions; segment k is ops[cuts[k]:cuts[k+1]]
    states: list[list[int]]  # live active variable ids at each cut
    notes: list[str] = field(default_factory=list)

    def size(self, ids: Sequence[int]) -> int:
        return sum(int(math.prod(self.avals[i].shape)) for i in ids)

    def constant_env(self, others: Sequence[Any]) -> dict[int, Any]:
        """Values of every inactive variable: closed-over constants, the inputs
        held constant, and what inactive equations compute from them."""
        env = dict(self.constants)
        env.update(zip(self.other_input_ids, others))
        for op in self.ops:
            if not op.active:
                _evaluate(op, env)
        return env

    def segment_function(self, index: int, env: dict[int, Any]) -> Callable[[Any], Any]:
        start, stop = self.cuts[index], self.cuts[index + 1]
        state_in, state_out = self.states[index], self.states[index + 1]
        shapes_in = [self.avals[i].shape for i in state_in]
        ops = [op for op in self.ops[start:stop] if op.active]

        def segment(vector):
            local = dict(env)
            offset = 0
            for var, shape in zip(state_in, shapes_in):
                size = int(math.prod(shape))
                local[var] = jnp.reshape(vector[offset : offset + size], shape)
                offset += size
            for op in ops:
                _evaluate(op, local)
            pieces = [jnp.reshape(local[var], (-1,)) for var in state_out]
            return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)

        return segment


def _evaluate(op: _Op, env: dict[int, Any]) -> None:
    values = [item[1] if isinstance(item, tuple) else env[item] for item in op.inputs]
    equation = op.equation
    params = equation.primitive.get_bind_params(equation.params)
    subfuns: Sequence[Any] = ()
    if isinstance(params, tuple):  # older JAX: (subfuns, params)
        subfuns, params = params
    with equation.ctx.manager:
        outputs = equation.primitive.bind(*subfuns, *values, **params)
    if not equation.primitive.multiple_results:
        outputs = [outputs]
    for var, value in zip(op.outputs, outputs):
        env[var] = value


def _flatten(closed_jaxpr: Any) -> tuple[list[_Op], dict[int, Any], list[int], dict[int, Any], list[int]]:
    """Inline calls recursively; give every variable an integer id."""
    ops: list[_Op] = []
    avals: dict[int, Any] = {}
    constants: dict[int, Any] = {}
    counter = iter(range(1 << 62))

    def new_var(aval: Any) -> int:
        var = next(counter)
        avals[var] = aval
        return var

    def walk(jaxpr: Any, consts: Sequence[Any], inputs: list) -> list:
        names: dict[Any, Any] = {}
        for var, value in zip(jaxpr.constvars, consts):
            names[var] = new_var(var.aval)
            constants[names[var]] = value
        for var, item in zip(jaxpr.invars, inputs):
            names[var] = item

        def read(atom: Any) -> Any:
            if isinstance(atom, jax.extend.core.Literal):
                return ("literal", atom.val)
            return names[atom]

        for equation in jaxpr.eqns:
            inner = equation.params.get("jaxpr", equation.params.get("call_jaxpr"))
            if equation.primitive.name in _INLINED and inner is not None:
                inner_jaxpr = getattr(inner, "jaxpr", inner)
                inner_consts = getattr(inner, "consts", ())
                results = walk(inner_jaxpr, inner_consts, [read(atom) for atom in equation.invars])
                for var, item in zip(equation.outvars, results):
                    names[var] = item
                continue
            outputs = [new_var(var.aval) for var in equation.outvars]
            for var, out in zip(equation.outvars, outputs):
                names[var] = out
            ops.append(_Op(equation, [read(atom) for atom in equation.invars], outputs))
        return [read(atom) for atom in jaxpr.outvars]

    jaxpr = closed_jaxpr.jaxpr
    input_ids = [new_var(var.aval) for var in jaxpr.invars]
    outputs = walk(jaxpr, closed_jaxpr.consts, list(input_ids))
    return ops, avals, input_ids, constants, outputs


def _is_float(aval: Any) -> bool:
    return np.issubdtype(np.dtype(aval.dtype), np.inexact)


def _build_program(closed_jaxpr: Any) -> _Program:
    ops, avals, input_ids, constants, outputs = _flatten(closed_jaxpr)
    if len(outputs) != 1 or isinstance(outputs[0], tuple):
        raise _Opaque("the output does not depend on the differentiated input")
    input_id, output_id = input_ids[0], outputs[0]
    if closed_jaxpr.jaxpr.effects:
        raise _Opaque(f"the program has side effects ({', '.join(map(str, closed_jaxpr.jaxpr.effects))})")
    active = {input_id}
    for op in ops:
        op.active = any(not isinstance(item, tuple) and item in active for item in op.inputs)
        if op.active:
            active.update(op.outputs)
    if output_id not in active:
        raise _Opaque("the output does not depend on the differentiated input")
    if output_id == input_id:
        raise _Opaque("the function returns its input")

    # last use of every active variable (the output counts as used at the end)
    last_use: dict[int, int] = {output_id: len(ops)}
    for position, op in enumerate(ops):
        for item in op.inputs:
            if not isinstance(item, tuple) and item in active:
                last_use[item] = max(last_use.get(item, -1), position)
    defined_at = {input_id: -1}
    for position, op in enumerate(ops):
        for var in op.outputs:
            defined_at[var] = position

    # candidate cuts: before op p, for p = 1..len(ops)-1, where the live active state is all-float
    candidates: list[tuple[int, list[int]]] = []
    live: set[int] = {input_id}
    for position in range(1, len(ops)):
        previous = ops[position - 1]
        if previous.active:
            live.update(var for var in previous.outputs if last_use.get(var, -1) >= position)
        live = {var for var in live if last_use.get(var, -1) >= position}
        if not live or not all(_is_float(avals[var]) for var in live):
            continue
        if not any(op.active for op in ops[position:]) or not any(op.active for op in ops[:position]):
            continue
        candidates.append((position, sorted(live)))

    def size(ids: list[int]) -> int:
        return sum(int(math.prod(avals[i].shape)) for i in ids)

    # the end of each stretch of equal state size
    kept: list[tuple[int, list[int]]] = []
    for index, (position, state) in enumerate(candidates):
        following = candidates[index + 1][1] if index + 1 < len(candidates) else [output_id]
        if size(following) != size(state):  # the stretch ends here
            kept.append((position, state))
    # drop multi-array states that are larger than both neighbours (inside residual blocks)
    sizes = [size([input_id])] + [size(state) for _, state in kept] + [size([output_id])]
    kept = [
        cut
        for index, cut in enumerate(kept)
        if len(cut[1]) == 1 or not (sizes[index + 1] > sizes[index] and sizes[index + 1] > sizes[index + 2])
    ]
    cuts = [0] + [position for position, _ in kept] + [len(ops)]
    states = [[input_id]] + [state for _, state in kept] + [[output_id]]
    # a segment that only moves data (reshape, slice, a bias add, ...) joins its neighbour
    index = 0
    while len(cuts) > 2 and index < len(cuts) - 1:
        if all(_moves_data(op, active) for op in ops[cuts[index] : cuts[index + 1]] if op.active):
            boundary = index + 1 if index + 1 < len(cuts) - 1 else index
            del cuts[boundary], states[boundary]
        else:
            index += 1
    return _Program(ops, avals, input_id, input_ids[1:], constants, output_id, cuts, states)


def _moves_data(op: _Op, active: set[int]) -> bool:
    """Whether the op's linearization does no arithmetic on the differentiated values."""
    name = op.equation.primitive.name
    if name in FREE_PRIMITIVES or name == "split":
        return True
    if name in ("add", "sub", "add_any"):
        return sum(not isinstance(item, tuple) and item in active for item in op.inputs) == 1
    return False


class _Opaque(Exception):
    """The program is used as one segment, for the reason given."""


def _source(op: _Op) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(op.equation.source_info)
    except Exception:  # pragma: no cover - private API moved
        return ""


@dataclass
class _Traced:
    """Everything ``trace``/``jacobian`` know about ``f`` at one input signature."""

    chain: Chain  # layers without functions; bind() gives the functions
    segments: list[Segment]
    program: _Program | None
    flat_function: Callable[..., Any]  # (v, *others) -> flat output
    notes: list[str]

    def functions(self, others: Sequence[Any]) -> list[Callable[[Any], Any]]:
        if self.program is None:
            return [functools.partial(_call_with, self.flat_function, others)]
        env = self.program.constant_env(others)
        return [self.program.segment_function(k, env) for k in range(len(self.segments))]


def _call_with(function: Callable[..., Any], others: Sequence[Any], vector: Any) -> Any:
    return function(vector, *others)


def _prepare(flat_function: Callable[..., Any], vector: Any, others: Sequence[Any]) -> _Traced:
    avals = [jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in (vector, *others)]
    notes: list[str] = []
    closed = jax.make_jaxpr(flat_function)(*avals)
    try:
        program = _build_program(closed)

        def layer_info(k: int) -> Segment:
            start, stop = program.cuts[k], program.cuts[k + 1]
            active_ops = [op for op in program.ops[start:stop] if op.active]
            sources = [s for s in dict.fromkeys(_source(op) for op in active_ops) if s]
            return Segment(
                index=k,
                in_dim=program.size(program.states[k]),
                out_dim=program.size(program.states[k + 1]),
                primitives=[op.equation.primitive.name for op in active_ops],
                source="; ".join(sources[:2]) + (" ..." if len(sources) > 2 else ""),
            )

        segments = [layer_info(k) for k in range(len(program.cuts) - 1)]
        costs = _segment_costs(program, others, segments)  # counted abstractly
    except _Opaque as reason:
        program = None
        notes.append(f"not split: {reason}; the whole function is one segment")
    except Exception as error:  # noqa: BLE001 - any failure of the analysis falls back, never errors
        program = None
        notes.append(f"not split: the analysis failed ({type(error).__name__}: {error}); one segment")
    if program is None:
        in_dim = int(math.prod(np.shape(vector)))
        out_dim = int(math.prod(jax.eval_shape(flat_function, *avals).shape))
        names = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
        segments = [Segment(0, in_dim, out_dim, names, "the whole function")]
        costs = [layer_costs(lambda v: flat_function(v, *others), vector)]
    layers = []
    for segment, (tangent, adjoint, tape) in zip(segments, costs):
        segment.tangent_cost, segment.adjoint_cost, segment.tape = tangent, adjoint, tape
        layers.append(
            Layer(
                segment.in_dim,
                segment.out_dim,
                edges=tape,
                tangent_cost=tangent,
                adjoint_cost=adjoint,
                name=f"segment {segment.index}",
            )
        )
    return _Traced(Chain(layers), segments, program, flat_function, notes)


def _segment_costs(program: _Program, others: Sequence[Any], segments: list[Segment]) -> list[tuple[int, int, int]]:
    found: list[tuple[int, int, int]] = []

    def probe(*values):
        env = program.constant_env(values)
        for k, segment in enumerate(segments):
            function = program.segment_function(k, env)
            found.append(layer_costs(function, jax.ShapeDtypeStruct((segment.in_dim,), _state_dtype(program, k))))
        return 0

    jax.eval_shape(probe, *[jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in others])
    return found


def _state_dtype(program: _Program, index: int) -> Any:
    dtypes = [program.avals[var].dtype for var in program.states[index]]
    return jnp.result_type(*dtypes)


# -- the user-facing functions -----------------------------------------------------------


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
        if not np.issubdtype(dtype, np.inexact):
            raise TypeError(
                "chainorder.jacobian requires real- or complex-valued inputs (input dtype that is a "
                f"sub-dtype of np.inexact), but got {dtype.name}. If you want to use integer-valued "
                "inputs, use vjp or set allow_int to True."
            )
    vector, unravel = _ravel(chosen)
    rest = [a for i, a in enumerate(args) if i not in numbers]
    rest_leaves, rest_tree = jax.tree_util.tree_flatten(rest)

    def rebuild(vector, rest_leaves):
        rest_args = iter(jax.tree_util.tree_unflatten(rest_tree, list(rest_leaves)))
        values = unravel(vector)
        picked = iter((values,) if isinstance(argnums, int) else values)
        return tuple(next(picked) if i in numbers else next(rest_args) for i in range(len(args)))

    return vector, rest_leaves, rebuild, chosen


def _ravel(tree: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Like ravel_pytree, but a lone array is only reshaped (no split or concatenate
    ends up in the jaxpr)."""
    if hasattr(tree, "shape") and hasattr(tree, "dtype") and not isinstance(tree, (list, tuple, dict)):
        shape = tuple(tree.shape)
        return jnp.reshape(tree, (-1,)), functools.partial(jnp.reshape, shape=shape)
    return ravel_pytree(tree)


def _flat_output(f: Callable[..., Any], rebuild: Callable[..., Any], holder: dict) -> Callable[..., Any]:
    def flat_function(vector, *rest_leaves):
        output = f(*rebuild(vector, rest_leaves))
        leaves = jax.tree_util.tree_leaves(output)
        if not leaves or not all(hasattr(leaf, "shape") and hasattr(leaf, "dtype") for leaf in leaves):
            raise TypeError(
                "the function must return an array or a pytree of arrays, got "
                f"{type(output).__name__}"
            )
        flat, _ = _ravel(output)
        holder["output"] = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), output)
        return flat

    return flat_function


def _unflatten_jacobian(matrix: Any, output: Any, chosen: Any) -> Any:
    """Cut the (m, n) Jacobian into jax.jacobian's layout: output tree of input trees."""
    out_leaves, out_tree = jax.tree_util.tree_flatten(output)
    in_leaves, in_tree = jax.tree_util.tree_flatten(chosen)
    in_shapes = [tuple(np.shape(leaf)) for leaf in in_leaves]
    in_sizes = [int(math.prod(shape)) for shape in in_shapes]
    blocks = []
    row = 0
    in_dtypes = [jnp.result_type(leaf) for leaf in in_leaves]  # jax.jacobian's blocks have the input's dtype
    if len(out_leaves) == 1 and len(in_leaves) == 1:  # the common case: no slicing at all
        block = jnp.reshape(matrix, tuple(out_leaves[0].shape) + in_shapes[0]).astype(in_dtypes[0])
        return jax.tree_util.tree_unflatten(out_tree, [jax.tree_util.tree_unflatten(in_tree, [block])])
    for out_leaf in out_leaves:
        rows = int(math.prod(out_leaf.shape))
        column = 0
        per_input = []
        for shape, size, dtype in zip(in_shapes, in_sizes, in_dtypes):
            block = matrix[row : row + rows, column : column + size]
            per_input.append(jnp.reshape(block, tuple(out_leaf.shape) + shape).astype(dtype))
            column += size
        blocks.append(jax.tree_util.tree_unflatten(in_tree, per_input))
        row += rows
    return jax.tree_util.tree_unflatten(out_tree, blocks)


def trace(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> Chain:
    """The chain of ``f`` at ``args``: layers are segments of its jaxpr.

    The layers' functions map the flattened state before a segment to the
    flattened state after it, with the other arguments held at ``args``.

    >>> import jax.numpy as jnp
    >>> W1, W2 = jnp.ones((32, 100)), jnp.ones((100, 32))
    >>> chain = trace(lambda x: W2 @ jnp.tanh(W1 @ x), jnp.ones(100))
    >>> chain.dims
    (100, 32, 100)
    """
    traced, vector, rest = _traced_for(f, args, argnums)
    functions = traced.functions(rest)
    return Chain(
        [
            Layer(
                layer.in_dim,
                layer.out_dim,
                edges=layer.edges,
                tangent_cost=layer.tangent_cost,
                adjoint_cost=layer.adjoint_cost,
                fn=function,
                name=layer.name,
            )
            for layer, function in zip(traced.chain, functions)
        ]
    )


def _traced_for(f: Callable[..., Any], args: tuple, argnums: int | Sequence[int]):
    if not callable(f):
        raise TypeError(f"expected a function, got {type(f).__name__}")
    vector, rest, rebuild, _ = _split_arguments(args, argnums)
    holder: dict = {}
    return _prepare(_flat_output(f, rebuild, holder), vector, rest), vector, rest


@dataclass
class Analysis:
    """What :func:`analyze` found: the segments of ``f``, its chain and the optimal plan."""

    chain: Chain
    plan: Plan
    segments: list[Segment]
    notes: list[str]

    def __str__(self) -> str:
        lines = [f"  {len(self.segments)} segments (layers) found in the function"]
        lines.extend(f"  note: {note}" for note in self.notes)
        header = f"  {'seg':>3} {'in':>7} {'out':>7} {'tangent':>12} {'adjoint':>12} {'tape':>9}  operations / source"
        lines.append(header)
        for segment in self.segments:
            lines.append(
                f"  {segment.index:>3} {segment.in_dim:>7} {segment.out_dim:>7} {segment.tangent_cost:>12,} "
                f"{segment.adjoint_cost:>12,} {segment.tape:>9,}  {segment.describe()}"
            )
            if segment.source:
                lines.append(f"  {'':>54}at {segment.source}")
        return "\n".join(lines) + "\n\n" + str(self.plan)


def analyze(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, **options: Any) -> Analysis:
    """Trace ``f`` at ``args``, optimize its chain, and report both.

    ``options`` go to :func:`chainorder.optimize` (``strategy``, ``tape_limit``,
    ``memory_limit``, ...). ``print(analyze(f, x))`` shows each segment's dims,
    costs and where in ``f`` it comes from, then the plan table.
    """
    traced, _, _ = _traced_for(f, args, argnums)
    plan = optimize(traced.chain, **options)
    return Analysis(traced.chain, plan, traced.segments, traced.notes)


def jacobian(f: Callable[..., Any], argnums: int | Sequence[int] = 0, **options: Any) -> Callable[..., Any]:
    """Like ``jax.jacobian(f, argnums)``, computed with the optimal plan.

    The analysis (trace and optimize) runs once per input signature (tree
    structure, shapes and dtypes) and is cached; the Jacobian itself is one
    jitted program. Pytree inputs and outputs give ``jax.jacobian``'s layout;
    the result composes with ``jax.jit`` and ``jax.vmap``.

    >>> import jax, jax.numpy as jnp
    >>> W1, W2 = jnp.ones((4, 50)), jnp.ones((50, 4))
    >>> f = lambda x: jnp.tanh(W2 @ jnp.sin(W1 @ x))
    >>> J = jacobian(f)(jnp.ones(50) / 50)
    >>> J.shape, bool(jnp.allclose(J, jax.jacobian(f)(jnp.ones(50) / 50), atol=1e-6))
    ((50, 50), True)
    """
    if not callable(f):
        raise TypeError(f"expected a function, got {type(f).__name__}")
    cache: dict[Any, tuple] = {}

    def signature(args: tuple) -> Any:
        leaves, tree = jax.tree_util.tree_flatten(args)
        return tree, tuple((np.shape(leaf), jnp.result_type(leaf)) for leaf in leaves)

    @functools.wraps(f)
    def jacobian_of_f(*args: Any) -> Any:
        key = signature(args)
        if key not in cache:
            vector, rest, rebuild, chosen = _split_arguments(args, argnums)
            holder: dict = {}
            flat_function = _flat_output(f, rebuild, holder)
            traced = _prepare(flat_function, vector, rest)
            plan = optimize(traced.chain, **options)

            def compute(vector, rest):
                mode = library_mode(plan)
                if mode == "forward":
                    return jax.jacfwd(flat_function)(vector, *rest)
                if mode == "reverse":
                    return jax.jacrev(flat_function)(vector, *rest)
                return run_steps(plan, traced.functions(rest), vector)

            cache[key] = (jax.jit(compute), plan, holder)
        compute, plan, holder = cache[key]
        vector, rest, _, chosen = _split_arguments(args, argnums)
        return _unflatten_jacobian(compute(vector, rest), holder["output"], chosen)

    jacobian_of_f.plans = cache  # type: ignore[attr-defined]
    return jacobian_of_f
