"""Running a plan in JAX: the Jacobian it describes, computed, jitted, validated.

Every step executes as what it is. The primal pass evaluates each layer once and
keeps the chain's variables (the memory model's primal values). Then, in the
plan's order,

* tangent preaccumulation / tangent step: ``jax.linearize`` of the layers it goes
  through at their input, and ``vmap`` of that JVP over the columns of the seed
  (the identity, or the Jacobian accumulated so far); an explicit layer's
  preaccumulation writes ``diag(s'(Wx + b)) W`` (:mod:`.explicit`), a sparse
  layer's pushes its colors;
* adjoint preaccumulation / adjoint step: ``jax.vjp`` of the layers it goes
  through (its tape lives for this step only), ``vmap`` of the VJP over the rows;
* product: a matmul.

A step with a ``chunk`` pushes (pulls) that many seeds at a time in a loop
(:mod:`.chunks`).

Under ``jit`` XLA merges the segments' primal evaluations with the primal pass
where it pays.

Jacobians of sub-chains are ``(m_j, n_i)`` matrices over the flattened
variables; the result is reshaped like ``jax.jacobian``'s
(``output.shape + x.shape``). A plan whose steps are pure forward (pure
reverse) mode runs as ``jax.jacfwd`` (``jax.jacrev``) itself, with no overhead.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.chain import Chain
from ..core.coloring import LayerPattern
from ..core.plan import Plan
from ..core.steps import Step, StepKind
from .chunks import identity_columns, in_chunks, seed_slice
from .compressed import compressed_preaccumulation, layer_pattern
from .explicit import dense, explicit_jacobian

__all__ = [
    "EXECUTORS",
    "Run",
    "apply_chain",
    "flat_layers",
    "plan_jacobian",
    "jacobian_function",
    "run_steps",
    "validate_plan",
]


def _layer_functions(chain: Chain) -> list[Callable[[Any], Any]]:
    functions = []
    for index, layer in enumerate(chain):
        if layer.fn is None:
            raise ValueError(
                f"layer {index} has no function: build it with Layer(..., fn=callable) "
                "or Chain.from_functions to execute a plan"
            )
        functions.append(layer.fn)
    return functions


def _check_output(index: int, chain: Chain, y: Any) -> None:
    layer = chain[index]
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise TypeError(f"layer {index}: its function must return an array, got {type(y).__name__}")
    size = int(np.prod(y.shape))
    if layer.out_shape is not None and tuple(y.shape) != layer.out_shape:
        raise ValueError(f"layer {index}: its function returned shape {tuple(y.shape)}, expected {layer.out_shape}")
    if size != layer.out_dim:
        raise ValueError(
            f"layer {index}: its function returned shape {tuple(y.shape)} ({size} entries), "
            f"but out_dim is {layer.out_dim}"
        )
    if index + 1 < len(chain):
        following = chain[index + 1]
        if following.in_shape is not None and tuple(y.shape) != following.in_shape:
            raise ValueError(
                f"layer {index}: its function returned shape {tuple(y.shape)}, but layer "
                f"{index + 1} takes in_shape {following.in_shape}"
            )


def check_input(chain: Chain, x: Any) -> Any:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    dtype = np.dtype(x.dtype)
    if np.issubdtype(dtype, np.complexfloating):
        # a plan mixes JVPs and VJPs, which agree on complex values only for holomorphic layers
        raise TypeError(
            f"plan.jacobian requires real-valued inputs (a float dtype), got {dtype}; for holomorphic "
            "functions use chainorder.jacobian(f, holomorphic=True), which computes as jax.jacobian does"
        )
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"the chain's Jacobian needs a real-valued input (a float dtype), got {dtype}")
    first = chain[0]
    shape = tuple(x.shape)
    if first.in_shape is not None and shape != first.in_shape:
        raise ValueError(f"x has shape {shape}, but layer 0 takes in_shape {first.in_shape}")
    if int(np.prod(shape)) != first.in_dim:
        raise ValueError(f"x has shape {shape} ({int(np.prod(shape))} entries), but layer 0's in_dim is {first.in_dim}")
    return x


def apply_chain(chain: Chain, x: Any) -> Any:
    """``F_{q-1}(... F_0(x))``, checking each layer's output shape."""
    functions = _layer_functions(chain)
    x = check_input(chain, x)
    for index, function in enumerate(functions):
        next_shape = chain[index].in_shape or x.shape
        x = function(jnp.reshape(x, next_shape))
        _check_output(index, chain, x)
    return x


def _flat(function: Callable[[Any], Any], shape: tuple[int, ...]) -> Callable[[Any], Any]:
    def flat_function(vector):
        return jnp.reshape(function(jnp.reshape(vector, shape)), (-1,))

    return flat_function


def library_mode(plan: Plan) -> str | None:
    """'forward' / 'reverse' when the plan is exactly jax.jacfwd / jax.jacrev (not where a step
    pushes its seeds in chunks: jax.jacfwd pushes them all at once)."""
    if any(step.chunk is not None for step in plan.steps):
        return None
    if plan.mode == "forward":
        return "forward"
    if plan.mode == "reverse" and len(plan.steps) <= 2:
        return "reverse"
    return None


def flat_layers(chain: Chain, x: Any) -> tuple[list[Callable[[Any], Any]], list[tuple[int, ...]]]:
    """The layer functions as flat vector to flat vector, and the shapes of the chain's variables."""
    shapes = [tuple(x.shape)]
    flats = []
    for index, function in enumerate(_layer_functions(chain)):
        shape = chain[index].in_shape or shapes[-1]
        output = jax.eval_shape(function, jax.ShapeDtypeStruct(shape, x.dtype))
        _check_output(index, chain, output)
        shapes.append(tuple(output.shape))
        flats.append(_flat(function, shape))
    return flats, shapes


def materialized(seed: Any) -> Any:
    """``seed``, written out before the JVPs that take its columns read it.

    ``vmap`` over columns moves them to the front and back again. Without this, XLA folds the
    first move into the product that made the seed (a dot with a transposed output) and fuses
    the move back with the layer's last elementwise op: a transposing loop that runs about 8x
    slower than the move alone (pushing a 1024x1024 product through ``sin``: 1.89 ms against 0.25
    ms). Written out, the two moves cancel around the elementwise ops.
    """
    return jax.lax.optimization_barrier(seed)


def _mixed_jacobian(plan: Plan, x: Any) -> Any:
    flats, shapes = flat_layers(plan.chain, x)
    jacobian = run_steps(plan, flats, jnp.reshape(x, (-1,)))
    return jnp.reshape(jacobian, shapes[-1] + shapes[0])


class Run:
    """The primal values of one execution, and the layer functions to linearize."""

    def __init__(
        self,
        functions: list[Callable[[Any], Any]],
        x: Any,
        values: Mapping[int, Any] | None = None,
        chain: Chain | None = None,
    ) -> None:
        self.functions = functions
        self.chain = chain  # for the colors of layers preaccumulated by compression
        if values is not None:  # computed before: a scheduled step gets the ones it reads, by layer
            self.values = values
            return
        self.values = [x]  # each layer once; its input is where steps starting there linearize
        for function in functions:
            self.values.append(function(self.values[-1]))

    def segment(self, first: int, last: int) -> Callable[[Any], Any]:
        def through(vector):
            for layer in range(first, last + 1):
                vector = self.functions[layer](vector)
            return vector

        return through

    def push(self, first: int, last: int, seed: Any = None, chunk: int | None = None) -> Any:
        """JVPs through layers first..last of every column of ``seed`` (None: the identity),
        ``chunk`` columns at a time (:mod:`.chunks`; None: all at once)."""
        _, linear = jax.linearize(self.segment(first, last), self.values[first])
        jvps = jax.vmap(linear, in_axes=1, out_axes=1)
        dtype, size = self.values[first].dtype, self.values[first].shape[0]
        seed = None if seed is None else materialized(dense(seed).astype(dtype))
        count = size if seed is None else seed.shape[1]
        if chunk is None or chunk >= count:
            return jvps(self.identity(size, first) if seed is None else seed)

        def block(start, columns):
            seeds = (
                identity_columns(size, start, columns, dtype) if seed is None else seed_slice(seed, start, columns, 1)
            )
            return jvps(seeds)

        out = self.values[last + 1]
        return in_chunks(block, count, chunk, (out.shape[0], count), out.dtype, axis=1)

    def pull(self, first: int, last: int, seed: Any = None, chunk: int | None = None) -> Any:
        """VJPs back through layers first..last of every row of ``seed`` (None: the identity),
        ``chunk`` rows at a time; the tape lives for this step only."""
        _, pullback = jax.vjp(self.segment(first, last), self.values[first])
        vjps = jax.vmap(lambda row: pullback(row)[0])
        dtype, size = self.values[last + 1].dtype, self.values[last + 1].shape[0]
        seed = None if seed is None else dense(seed).astype(dtype)
        count = size if seed is None else seed.shape[0]
        if chunk is None or chunk >= count:
            return vjps(self.identity(size, last + 1) if seed is None else seed)

        def block(start, rows):
            seeds = identity_columns(size, start, rows, dtype).T if seed is None else seed_slice(seed, start, rows, 0)
            return vjps(seeds)

        into = self.values[first]
        return in_chunks(block, count, chunk, (count, into.shape[0]), into.dtype, axis=0)

    def identity(self, size: int, at: int) -> Any:
        return jnp.eye(size, dtype=self.values[at].dtype)

    def pattern(self, layer: int, direction: str) -> LayerPattern | None:
        """The pattern to preaccumulate ``layer`` with by compression in ``direction``, or None
        (a dense layer): the layer's own, or found again from its function (its colors checked)."""
        if self.chain is None:
            return None
        spec = self.chain[layer]
        colors = spec.tangent_colors if direction == "tangent" else spec.adjoint_colors
        if colors is None:
            return None
        pattern = spec.pattern
        if pattern is None:
            pattern = layer_pattern(self.functions[layer], spec.in_dim, self.values[layer].dtype)
        found = None if pattern is None else max(pattern.coloring(direction).count, 1)
        if found is None or found > colors:
            what = "is more than half dense" if found is None else f"needs {found}"
            raise ValueError(
                f"layer {layer}: {direction}_colors is {colors}, but its Jacobian's pattern {what}: "
                "plans priced with those colors cannot run"
            )
        return pattern

    def explicit(self, layer: int) -> Any:
        """``layer``'s Jacobian written directly (an explicit layer), factored
        (:class:`~chainorder.backend.explicit.ExplicitJacobian`: products scale their other operand,
        tangent and adjoint steps write it out), or None where the plan's chain does not
        preaccumulate it so."""
        if self.chain is None or not self.chain[layer].preaccumulates_explicitly:
            return None
        try:
            return explicit_jacobian(self.functions[layer], self.values[layer])
        except ValueError as error:
            raise ValueError(f"layer {layer}: explicit is True, but {error}: plans priced so cannot run") from None


def _tangent_preaccumulation(run: Run, step: Step) -> Any:
    explicit = run.explicit(step.first)
    if explicit is not None:
        return explicit
    pattern = run.pattern(step.first, "tangent")
    if pattern is not None:
        push = lambda seeds: run.push(step.first, step.first, seeds.T).T  # noqa: E731
        return compressed_preaccumulation(push, pattern, "tangent", run.values[step.first].dtype)
    return run.push(step.first, step.first, chunk=step.chunk)


def _adjoint_preaccumulation(run: Run, step: Step) -> Any:
    pattern = run.pattern(step.first, "adjoint")
    if pattern is not None:
        pull = lambda seeds: run.pull(step.first, step.first, seeds)  # noqa: E731
        return compressed_preaccumulation(pull, pattern, "adjoint", run.values[step.first + 1].dtype)
    return run.pull(step.first, step.first, chunk=step.chunk)


def _tangent_step(run: Run, step: Step, earlier: Any) -> Any:
    return run.push(*step.layers_applied, earlier, step.chunk)  # type: ignore[misc]


def _adjoint_step(run: Run, step: Step, later: Any) -> Any:
    return run.pull(*step.layers_applied, later, step.chunk)  # type: ignore[misc]


def _product(run: Run, step: Step, later: Any, earlier: Any) -> Any:
    return later @ earlier  # either may be an ExplicitJacobian, which scales the other


#: How each kind of step runs: ``executor(run, step, *operands)``, operands in
#: :meth:`StepKind.operands` order (later before earlier).
EXECUTORS: dict[StepKind, Callable[..., Any]] = {
    StepKind.TANGENT_PREACCUMULATION: _tangent_preaccumulation,
    StepKind.ADJOINT_PREACCUMULATION: _adjoint_preaccumulation,
    StepKind.TANGENT_STEP: _tangent_step,
    StepKind.ADJOINT_STEP: _adjoint_step,
    StepKind.PRODUCT: _product,
}


def run_steps(plan: Plan, functions: list[Callable[[Any], Any]], x: Any) -> Any:
    """Execute ``plan`` on layer functions that map flat vectors to flat vectors.

    Parameters
    ----------
    plan : Plan
    functions : list of callable
        One per layer of ``plan.chain``, flat vector to flat vector.
    x : array
        The flat input.

    Returns
    -------
    array
        The ``(m_{q-1}, n_0)`` Jacobian at ``x``; each step runs as ``EXECUTORS[step.kind]``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from chainorder import Chain, optimize
    >>> plan = optimize(Chain.from_dims([3, 2]))
    >>> run_steps(plan, [lambda v: jnp.ones((2, 3)) @ v], jnp.ones(3)).shape
    (2, 3)
    """
    run = Run(functions, x, chain=plan.chain)
    jacobians: dict[tuple[int, int], Any] = {}
    for step in plan.steps:
        operands = [jacobians.pop(operand) for operand in step.operands]
        jacobians[step.span] = EXECUTORS[step.kind](run, step, *operands)
    return dense(jacobians[(0, len(plan.chain) - 1)])


# jitted Jacobian functions by plan identity (equal plans may hold different layer functions)
_COMPILED: dict[int, Callable[[Any], Any]] = {}


def jacobian_function(plan: Plan) -> Callable[[Any], Any]:
    """A jitted function ``x -> J`` that computes the chain's Jacobian with ``plan``.

    Its result has the value, shape and dtype of ``jax.jacobian(plan.chain)(x)``;
    it composes with ``jax.jit`` and ``jax.vmap``.
    """
    cached = _COMPILED.get(id(plan))
    if cached is not None:
        return cached
    chain = plan.chain
    _layer_functions(chain)  # a clear error now rather than at the first call
    library = library_mode(plan)

    def composed(x):
        return apply_chain(chain, x)

    if library == "forward":
        inner = jax.jacfwd(composed)
    elif library == "reverse":
        inner = jax.jacrev(composed)
    else:

        def inner(x):
            return _mixed_jacobian(plan, x)

    # like jax.jacobian (reverse mode), the result has the input's dtype
    jitted = jax.jit(lambda x: inner(x).astype(x.dtype))

    def jacobian(x):
        return jitted(check_input(chain, x))

    _COMPILED[id(plan)] = jacobian
    weakref.finalize(plan, _COMPILED.pop, id(plan), None)
    return jacobian


def plan_jacobian(plan: Plan, x: Any) -> Any:
    """``plan``'s Jacobian of ``plan.chain`` at ``x`` (see :func:`jacobian_function`)."""
    return jacobian_function(plan)(x)


def validate_plan(plan: Plan, x: Any) -> dict[str, Any]:
    """Compare ``plan.jacobian(x)`` with ``jax.jacobian(plan.chain)(x)``.

    Returns ``max_abs_error`` (largest entrywise difference) and
    ``max_rel_error`` (that difference over the largest entry of the reference).
    """
    computed = plan_jacobian(plan, x)
    reference = jax.jacobian(lambda v: apply_chain(plan.chain, v))(x)
    if computed.shape != reference.shape:  # pragma: no cover - guarded by construction
        raise AssertionError(f"shape {computed.shape} differs from jax.jacobian's {reference.shape}")
    difference = float(jnp.max(jnp.abs(computed - reference)))
    scale = float(jnp.max(jnp.abs(reference)))
    return {
        "max_abs_error": difference,
        "max_rel_error": difference / scale if scale > 0 else difference,
        "shape": tuple(computed.shape),
        "dtype": str(computed.dtype),
    }
