"""Running a plan in JAX: the Jacobian it describes, computed, jitted, validated.

Every step executes as what it is (:mod:`.steprun`: JVPs, VJPs, products). The
primal pass evaluates each layer once and keeps the chain's variables (the memory
model's primal values); then the steps run in the plan's order.

Under ``jit`` XLA merges the segments' primal evaluations with the primal pass
where it pays.

Jacobians of sub-chains are ``(m_j, n_i)`` matrices over the flattened
variables; the result is reshaped like ``jax.jacobian``'s
(``output.shape + x.shape``). A plan whose steps are pure reverse mode runs as
``jax.jacrev`` itself, with no overhead; one of pure forward mode as ``jax.jacfwd`` with
its seeds kept last (:mod:`.seedslast`: no transposes between products and elementwise ops).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.chain import Chain
from ..core.plan import Plan
from .cuts import Stretch, compose
from .explicit import dense
from .seedslast import jacfwd_seeds_last
from .steprun import EXECUTORS, Run
from .xlaoptions import plan_compiler_options, top_level_jit

__all__ = [
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
    if jnp.issubdtype(dtype, jnp.complexfloating):
        # a plan mixes JVPs and VJPs, which agree on complex values only for holomorphic layers
        raise TypeError(
            f"plan.jacobian requires real-valued inputs (a float dtype), got {dtype}; for holomorphic "
            "functions use chainorder.jacobian(f, holomorphic=True), which computes as jax.jacobian does"
        )
    if not jnp.issubdtype(dtype, jnp.floating):  # bfloat16 too (numpy does not count it floating)
        raise TypeError(f"the chain's Jacobian needs a real-valued input (a float dtype), got {dtype}")
    first = chain[0]
    shape = tuple(x.shape)
    if first.in_shape is not None and shape != first.in_shape:
        raise ValueError(f"x has shape {shape}, but layer 0 takes in_shape {first.in_shape}")
    if int(np.prod(shape)) != first.in_dim:
        raise ValueError(f"x has shape {shape} ({int(np.prod(shape))} entries), but layer 0's in_dim is {first.in_dim}")
    return x


def apply_chain(chain: Chain, x: Any) -> Any:
    """``F_{q-1}(... F_0(x))``, checking each layer's output shape (a traced program's stretches
    run joined, :func:`.cuts.compose`)."""
    functions = _layer_functions(chain)
    x = check_input(chain, x)
    joined = compose(functions) if all(isinstance(function, Stretch) for function in functions) else None
    if isinstance(joined, Stretch):  # one program's stretches, in order: its output has the shape it had
        return joined(jnp.reshape(x, (-1,)))
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
        flats.append(function if isinstance(function, Stretch) else _flat(function, shape))  # joins with its neighbours
    return flats, shapes


def _mixed_jacobian(plan: Plan, x: Any) -> Any:
    flats, shapes = flat_layers(plan.chain, x)
    jacobian = run_steps(plan, flats, jnp.reshape(x, (-1,)))
    return jnp.reshape(jacobian, shapes[-1] + shapes[0])


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

        def inner(x):
            flat = jacfwd_seeds_last(_flat(composed, x.shape))(jnp.reshape(x, (-1,)))
            return jnp.reshape(flat, jax.eval_shape(composed, x).shape + x.shape)

    elif library == "reverse":
        inner = jax.jacrev(composed)
    else:

        def inner(x):
            return _mixed_jacobian(plan, x)

    # like jax.jacobian (reverse mode), the result has the input's dtype
    jitted = top_level_jit(lambda x: inner(x).astype(x.dtype), plan_compiler_options(plan))

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
