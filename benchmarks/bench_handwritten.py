"""Is the executor the bottleneck? The autoencoder's optimal plan run by chainorder vs the
same plan written by hand in jax.numpy, vs its final dense product alone.

Run: python benchmarks/bench_handwritten.py [--repeat 40]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from chainorder import Chain, optimize
from chainorder.front.zoo import median_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    dims = [1024, 512, 16, 512, 1024]
    weights = [
        jnp.asarray(rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]), jnp.float32) for i in range(4)
    ]
    functions = [lambda v, w=w: jnp.tanh(w @ v) for w in weights]
    x = jnp.asarray(rng.standard_normal(1024), jnp.float32)
    plan = optimize(Chain.from_functions(functions, x))

    def by_hand(v):
        h1 = jnp.tanh(weights[0] @ v)
        h2 = jnp.tanh(weights[1] @ h1)
        h3 = jnp.tanh(weights[2] @ h2)
        h4 = jnp.tanh(weights[3] @ h3)
        rows = ((1 - h2**2)[:, None] * weights[1] * (1 - h1**2)[None, :]) @ weights[0]  # 16 x 1024
        columns = ((1 - h4**2)[:, None] * weights[3] * (1 - h3**2)[None, :]) @ weights[2]  # 1024 x 16
        return columns @ rows

    left, right = weights[3][:, :16], weights[0][:16, :]
    functions_to_time = {
        "chainorder plan": jax.jit(plan.jacobian),
        "same plan by hand": jax.jit(by_hand),
        "final product alone": jax.jit(lambda v: left @ right + v[0]),
    }
    error = float(jnp.max(jnp.abs(functions_to_time["chainorder plan"](x) - by_hand(x))))
    times = median_times(functions_to_time, x, args.repeat)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, median of {args.repeat}")
    for name, seconds in times.items():
        print(f"{name:<22} {1e3 * seconds:7.3f} ms")
    print(f"max difference between the two plans: {error:.1e}")
    flops = 16 * 1024 * 1024
    print(f"final product: {flops / times['final product alone'] / 1e9:.1f} GFMA/s")


if __name__ == "__main__":
    main()
