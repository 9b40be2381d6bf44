"""A sparse layer inside a dense chain: its preaccumulation by compression, chosen by the DP.

Run: python benchmarks/bench_sparse_layers.py [--repeat 30] [--n 1024]

A chain of two layers, ``A``: a 7-point stencil with several transcendental ops per tap (a banded
Jacobian: 7 colors, costly JVPs) and ``B``: ``cumsum(tanh(.))`` (a dense triangular Jacobian,
cheap JVPs). The whole Jacobian is half dense, so whole-function compression does not apply.
``Chain.from_functions`` finds ``A``'s pattern; the DP preaccumulates ``A`` with one JVP per color
and pushes its ``n`` columns through ``B``, where dense pricing pushes ``n`` tangents through both.
Medians of interleaved rounds, float32, jitted: jax.jacfwd and jax.jacrev of ``B o A``, the
optimal plan with the colors, and the optimal plan of the same chain priced dense. Then
``chainorder.jacobian(B o A)`` on the composed function: the tracer cuts ``A`` into thin
segments, one per elementwise step, and joins the sparse ones into one layer.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder import Chain, optimize
from chainorder.front.zoo import median_times


def layers(n: int):
    rng = np.random.default_rng(0)
    taps = [float(c) for c in rng.uniform(0.5, 1.5, 7)]

    def stencil(u):
        padded = jnp.pad(u, 3)
        total = 0.0
        for shift, c in enumerate(taps):
            v = padded[shift : shift + n]
            total = total + jnp.tanh(c * v) * jnp.sin(v) + jnp.exp(-c * v * v) * jnp.cos(c * v)
        return total

    def running(v):
        return jnp.cumsum(jnp.tanh(v))

    return [stencil, running], jnp.asarray(rng.standard_normal(n), jnp.float32)


def timed(name: str, functions: dict, x, repeat: int, expected) -> dict[str, float]:
    for label, compute in functions.items():
        error = np.abs(np.asarray(compute(x)) - expected).max() / np.abs(expected).max()
        assert error < 1e-3, (name, label, error)  # float32 sums of 1,000 terms differ in the 4th digit
    return {label: seconds * 1e3 for label, seconds in median_times(functions, x, repeat).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--n", type=int, default=1024)
    args = parser.parse_args()
    (stencil, running), x = layers(args.n)
    chain = Chain.from_functions([stencil, running], x)
    plan, dense = optimize(chain), optimize(chain.without_structure())
    composed = lambda u: running(stencil(u))  # noqa: E731
    expected = np.asarray(jax.jacobian(composed)(x))
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, n = {args.n}, ms")
    layer = chain[0]
    print(
        f"layer 0: density {layer.nonzeros / (layer.in_dim * layer.out_dim):.2%}, {layer.tangent_colors} column "
        f"colors; FMAs: jacfwd {plan.forward_cost:,}, jacrev {plan.reverse_cost:,}, with colors {plan.cost:,} "
        f"({plan.bracketing}), priced dense {dense.cost:,} ({dense.bracketing})"
    )
    times = timed(
        "chain",
        {
            "jacfwd": jax.jit(jax.jacfwd(composed)),
            "jacrev": jax.jit(jax.jacrev(composed)),
            "with colors": jax.jit(plan.jacobian),
            "priced dense": jax.jit(dense.jacobian),
        },
        x,
        args.repeat,
        expected,
    )
    best = min(times["jacfwd"], times["jacrev"])
    print("  ".join(f"{label} {ms:.3f}" for label, ms in times.items()))
    print(
        f"with colors: {best / times['with colors']:.2f}x the better of jacfwd/jacrev, "
        f"{times['priced dense'] / times['with colors']:.2f}x the plan priced dense"
    )
    traced = chainorder.jacobian(composed)
    traced(x)
    (chosen,) = traced.plans.values()
    sparse = sum(layer.compressed for layer in chainorder.trace(composed, x))
    print(
        f"\nchainorder.jacobian(B o A): traced into {len(chosen.chain)} layers, {sparse} of them sparse; "
        f"it runs {chosen.bracketing} ({chosen.mode}, {chosen.cost:,} FMAs)"
    )
    times = timed(
        "traced",
        {"jacfwd": jax.jit(jax.jacfwd(composed)), "jacrev": jax.jit(jax.jacrev(composed)), "jacobian": jax.jit(traced)},
        x,
        args.repeat,
        expected,
    )
    print("  ".join(f"{label} {ms:.3f}" for label, ms in times.items()))
    print(f"chainorder.jacobian: {min(times['jacfwd'], times['jacrev']) / times['jacobian']:.2f}x the better of them")


if __name__ == "__main__":
    main()
