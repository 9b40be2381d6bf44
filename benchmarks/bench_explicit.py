"""Dense layers written explicitly: ``diag(s'(Wx + b)) W`` instead of ``n`` JVPs, chosen by the DP.

Run: python benchmarks/bench_explicit.py [--repeat 50]

For MLPs of ``tanh(W x + b)`` layers and residual blocks ``x + tanh(W x + b)`` (float32, jitted,
medians of interleaved rounds):
``jax.jacfwd`` and ``jax.jacrev`` of the composed function; ``chainorder.jacobian`` of it (the
tracer finds each layer's form on its jaxpr; the drop-in takes the explicit forms where they make
the plan 1.25x cheaper in FMAs); and, on ``Chain.from_functions`` of the same layers, the optimal
plan with the explicit forms and the optimal plan of the chain priced by JVPs only (what the DP
chose before). FMAs and the predicted speedup come from the plan.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder import Chain, optimize
from chainorder.front.zoo import median_times

MODELS = {
    "one layer 256": [256, 256],
    "one layer 1024": [1024, 1024],
    "two layers 512": [512, 512, 512],
    "three layers 256": [256, 256, 256, 256],
    "funnel 1024-256-64": [1024, 256, 64],
    "eight layers 128": [128] * 9,
    "autoencoder 1024-512-16-512-1024": [1024, 512, 16, 512, 1024],
    "residual blocks 3 x 256": [256, 256, 256, 256],
}
RESIDUAL = {"residual blocks 3 x 256"}  # x + tanh(W x + b): the Jacobian gains a diagonal


def layer_functions(dims: list[int], residual: bool = False):
    rng = np.random.default_rng(0)
    functions = []
    for n, m in zip(dims[:-1], dims[1:]):
        weight = jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(n), jnp.float32)
        bias = jnp.asarray(rng.uniform(-0.1, 0.1, m), jnp.float32)
        if residual:
            functions.append(lambda x, weight=weight, bias=bias: x + jnp.tanh(weight @ x + bias))
        else:
            functions.append(lambda x, weight=weight, bias=bias: jnp.tanh(weight @ x + bias))
    return functions, jnp.asarray(rng.standard_normal(dims[0]), jnp.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, ms (medians of interleaved rounds)")
    header = (
        f"{'model':<34} {'jacfwd FMAs':>12} {'plan FMAs':>12} {'jacfwd':>8} {'jacrev':>8} "
        f"{'by JVPs':>8} {'explicit':>8} {'drop-in':>8} {'explicit/best':>13} {'drop-in/best':>12} {'pred.':>6}"
    )
    print(header)
    for name, dims in MODELS.items():
        functions, x = layer_functions(dims, name in RESIDUAL)
        chain = Chain.from_functions(functions, x)
        f = chain  # a Chain applies its layers in order: the composed function
        plan, by_jvps = optimize(chain), optimize(chain.without_structure())
        expected = np.asarray(jax.jacobian(f)(x))
        candidates = {
            "jacfwd": jax.jit(jax.jacfwd(f)),
            "jacrev": jax.jit(jax.jacrev(f)),
            "by JVPs": jax.jit(by_jvps.jacobian),
            "explicit": jax.jit(plan.jacobian),
            "drop-in": jax.jit(chainorder.jacobian(f)),
        }
        for label, compute in candidates.items():
            error = np.abs(np.asarray(compute(x)) - expected).max() / np.abs(expected).max()
            assert error < 1e-4, (name, label, error)
        ms = {label: seconds * 1e3 for label, seconds in median_times(candidates, x, args.repeat).items()}
        best = min(ms["jacfwd"], ms["jacrev"])
        print(
            f"{name:<34} {plan.forward_cost:>12,} {plan.cost:>12,} {ms['jacfwd']:>8.3f} {ms['jacrev']:>8.3f} "
            f"{ms['by JVPs']:>8.3f} {ms['explicit']:>8.3f} {ms['drop-in']:>8.3f} {best / ms['explicit']:>12.2f}x "
            f"{best / ms['drop-in']:>11.2f}x {plan.predicted_speedup:>5.2f}x"
        )
        print(f"{'':<34} plan: {plan.bracketing}")


if __name__ == "__main__":
    main()
