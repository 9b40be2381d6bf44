"""A sparse layer inside a dense chain: its preaccumulation by compression, chosen by the DP.

Run: python benchmarks/bench_sparse_layers.py [--repeat 30] [--n 512]

``f(u) = tanh(W @ A(u))``: ``A`` a 7-point stencil with several transcendental ops per tap (a
banded Jacobian, 7 colors, costly JVPs), then a dense ``n x n`` layer, so the Jacobian is dense and
whole-function compression does not apply. ``chainorder.trace`` finds ``A``'s pattern; the DP
preaccumulates ``A`` with one JVP per color and pushes its ``n`` columns through the dense layer,
where dense pricing pushes ``n`` tangents through both. Medians of interleaved rounds, float32,
jitted: jax.jacfwd, jax.jacrev, the plan on the chain with its colors (what
``chainorder.jacobian(f)`` runs), and the optimal plan of the same chain priced dense.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder import optimize
from chainorder.front.zoo import median_times


def function(n: int):
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.standard_normal((n, n)) / np.sqrt(n), jnp.float32)
    taps = [float(c) for c in rng.uniform(0.5, 1.5, 7)]

    def stencil(u):
        padded = jnp.pad(u, 3)
        total = 0.0
        for shift, c in enumerate(taps):
            v = padded[shift : shift + n]
            total = total + jnp.tanh(c * v) * jnp.sin(v) + jnp.exp(-c * v * v) * jnp.cos(c * v)
        return total

    def f(u):
        return jnp.tanh(weights @ stencil(u))

    return f, jnp.asarray(rng.standard_normal(n), jnp.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    f, x = function(args.n)
    chain = chainorder.trace(f, x)
    sparse = [index for index, layer in enumerate(chain) if layer.compressed]
    plan, dense = optimize(chain), optimize(chain.uncompressed())
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, n = {args.n}")
    print(
        f"chain dims {chain.dims}; sparse layers {sparse}: "
        + ", ".join(f"{chain[i].tangent_colors} column colors, {chain[i].nonzeros:,} nonzeros" for i in sparse)
    )
    print(
        f"FMAs: jacfwd {plan.forward_cost:,}, jacrev {plan.reverse_cost:,}, with colors {plan.cost:,} "
        f"({plan.bracketing}), priced dense {dense.cost:,} ({dense.bracketing})"
    )
    functions = {
        "jacfwd": jax.jit(jax.jacfwd(f)),
        "jacrev": jax.jit(jax.jacrev(f)),
        "with colors": jax.jit(chainorder.jacobian(f)),
        "priced dense": jax.jit(dense.jacobian),
    }
    expected = np.asarray(jax.jacobian(f)(x))
    for name, compute in functions.items():
        error = np.abs(np.asarray(compute(x)) - expected).max() / np.abs(expected).max()
        assert error < 1e-4, (name, error)
    times = {name: seconds * 1e3 for name, seconds in median_times(functions, x, args.repeat).items()}
    best = min(times["jacfwd"], times["jacrev"])
    print("  ".join(f"{name} {ms:.3f} ms" for name, ms in times.items()))
    print(f"with colors: {best / times['with colors']:.2f}x the better of jacfwd/jacrev, "
          f"{times['priced dense'] / times['with colors']:.2f}x the plan priced dense")  # fmt: skip


if __name__ == "__main__":
    main()
