"""Forward mode with the seeds kept last: a prototype measured against jacfwd and jacrev (not used by chainorder yet).

Run: python benchmarks/bench_batch_last.py [--repeat 100]

Under ``jax.vmap`` an elementwise op with one unbatched operand (a layer's derivative times the
tangents) moves the batch axis first, and a ``W @ t`` leaves it last, so a forward-mode Jacobian
compiles with a transpose between them. jacfwd of the unrolled RK4 of the drop-in benchmark holds
121 and runs slower than jacrev although it needs half the FMAs. :func:`push_seeds_last` interprets
the linearized function's jaxpr itself: elementwise ops broadcast their unbatched operand along a
trailing axis, every other primitive is ``vmap``-ed with the seeds last. Prints each function's
median time (interleaved) and the number of transposes XLA compiled.
"""

from __future__ import annotations

import argparse
import re

import jax
import jax.numpy as jnp
import numpy as np
from bench_dropin import rk4
from jax.extend import core as jax_core

from chainorder.front.zoo import composed, dense_chain, median_times, zoo_chains

#: primitives whose operands have one shape (or are scalars): the unbatched ones get a trailing axis
ELEMENTWISE = {"mul", "add", "add_any", "sub", "neg", "div", "convert_element_type", "integer_pow", "select_n"}


def push_seeds_last(function, x, seeds):
    """JVPs of ``function`` at ``x`` of every column of ``seeds`` (``x.shape + (count,)``), columns kept last."""
    _, linear = jax.linearize(function, x)
    closed = jax.make_jaxpr(linear)(x)
    env = {}

    def read(var):
        return (var.val, False) if isinstance(var, jax_core.Literal) else env[var]

    for var, value in zip(closed.jaxpr.constvars, closed.consts):
        env[var] = (value, False)
    env[closed.jaxpr.invars[0]] = (seeds, True)
    for eqn in closed.jaxpr.eqns:
        values = [read(var) for var in eqn.invars]
        batched = any(flag for _, flag in values)
        if not batched:
            out = eqn.primitive.bind(*(value for value, _ in values), **eqn.params)
        elif eqn.primitive.name in ELEMENTWISE:
            operands = [v if flag or np.ndim(v) == 0 else jnp.expand_dims(v, -1) for v, flag in values]
            out = eqn.primitive.bind(*operands, **eqn.params)
        else:
            axes = [-1 if flag else None for _, flag in values]
            bind = lambda *operands, eqn=eqn: eqn.primitive.bind(*operands, **eqn.params)  # noqa: E731
            out = jax.vmap(bind, in_axes=axes, out_axes=-1)(*(value for value, _ in values))
        for var, value in zip(eqn.outvars, out if eqn.primitive.multiple_results else [out]):
            env[var] = (value, batched)
    value, flag = read(closed.jaxpr.outvars[0])
    return value if flag else jnp.broadcast_to(jnp.expand_dims(value, -1), (*np.shape(value), seeds.shape[-1]))


def cases():
    yield "unrolled RK4 (20 steps, width 32)", *rk4(32, 20)
    for seed, name, dims in zoo_chains(None, 1):
        functions, x = dense_chain(dims, seed, jnp.float32)
        yield name, composed(functions), x


def transposes(function, x) -> int:
    return len(re.findall(r"= \S+ transpose\(", jax.jit(function).lower(x).compile().as_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, medians of {args.repeat}, ms")
    print(f"{'function':<36} {'jacfwd':>8} {'jacrev':>8} {'seeds last':>10} {'x jacfwd':>8}  transposes (jacfwd, last)")
    for name, function, x in cases():
        last = jax.jit(lambda x, f=function: push_seeds_last(f, x, jnp.eye(x.shape[0], dtype=x.dtype)))
        functions = {"jacfwd": jax.jit(jax.jacfwd(function)), "jacrev": jax.jit(jax.jacrev(function)), "last": last}
        error = float(jnp.max(jnp.abs(last(x) - functions["jacrev"](x))))
        if error > 1e-3:
            raise AssertionError(f"{name}: the seeds-last Jacobian is off by {error}")
        seconds = median_times(functions, x, args.repeat)
        ms = {key: 1e3 * value for key, value in seconds.items()}
        counts = f"{transposes(jax.jacfwd(function), x)}, {transposes(last, x)}"
        print(
            f"{name:<36} {ms['jacfwd']:>8.3f} {ms['jacrev']:>8.3f} {ms['last']:>10.3f} "
            f"{seconds['jacfwd'] / seconds['last']:>7.2f}x  {counts}"
        )


if __name__ == "__main__":
    main()
