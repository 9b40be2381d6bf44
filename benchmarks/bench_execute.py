"""The execution zoo: the optimal plan vs jax.jacfwd and jax.jacrev, in wall time.

Run: python benchmarks/bench_execute.py [--repeat 15] [--dtype float32]

For each chain: predicted speedup (min(forward, reverse) cost / plan cost) and
measured speedup (best of jacfwd/jacrev wall time / plan wall time). Everything
is jitted and warmed up; times are medians of --repeat runs, all in this run.
Targets: measured >= 0.8 x predicted where predicted >= 2; never below 0.95 x
the best of jacfwd/jacrev; the bottleneck autoencoder at least 5x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from chainorder import Chain, optimize


def dense_chain(dims: list[int], seed: int, dtype, activations=("tanh",)) -> tuple[list[Callable], jax.Array]:
    """tanh(W x) layers, with an elementwise sin layer after every third dense layer."""
    rng = np.random.default_rng(seed)
    functions: list[Callable] = []
    for index in range(len(dims) - 1):
        weight = jnp.asarray(rng.standard_normal((dims[index + 1], dims[index])) / np.sqrt(dims[index]), dtype)
        functions.append(lambda x, weight=weight: jnp.tanh(weight @ x))
        if index % 3 == 2:
            functions.append(jnp.sin)
    x = jnp.asarray(rng.standard_normal(dims[0]), dtype)
    return functions, x


def random_dims(seed: int, length: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(d) for d in rng.choice([16, 32, 64, 128, 256, 512, 1024, 2048], size=length + 1)]


ZOO = {
    "autoencoder 1024-512-16-512-1024": [1024, 512, 16, 512, 1024],
    "U-shape 1024-256-64-16-64-256-1024": [1024, 256, 64, 16, 64, 256, 1024],
    "double bottleneck 512-16-512-16-512": [512, 16, 512, 16, 512],
    "forward-optimal 8-256-512-1024": [8, 256, 512, 1024],
    "reverse-optimal 1024-512-256-8": [1024, 512, 256, 8],
    "square 256x5": [256] * 6,
    "random A": random_dims(1, 6),
    "random B": random_dims(2, 8),
    "random C": random_dims(3, 5),
}


def median_times(functions: dict[str, Callable], x, repeat: int) -> dict[str, float]:
    """Median wall time of each function. The functions take turns, so drifts in
    the machine's speed hit all of them alike; each timed call follows an untimed
    call of the same function, so none pays for the caches another one emptied."""
    for function in functions.values():  # compile and warm up
        jax.block_until_ready(function(x))
        jax.block_until_ready(function(x))
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            jax.block_until_ready(function(x))
            start = time.perf_counter()
            jax.block_until_ready(function(x))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--only", default=None, help="run the zoo chains whose name contains this")
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {args.dtype}, median of {args.repeat}")
    header = (
        f"{'chain':<38} {'plan':>7} {'pred':>7} {'jacfwd ms':>10} {'jacrev ms':>10} {'plan ms':>9} "
        f"{'measured':>9} {'ratio':>6}  target"
    )
    print(header)
    print("-" * len(header))
    for seed, (name, dims) in enumerate(ZOO.items()):
        if args.only and args.only not in name:
            continue
        functions, x = dense_chain(dims, seed, dtype)
        chain = Chain.from_functions(functions, x)
        plan = optimize(chain)
        forward = jax.jit(jax.jacfwd(chain))
        reverse = jax.jit(jax.jacrev(chain))
        ours = jax.jit(plan.jacobian)
        error = float(jnp.max(jnp.abs(ours(x) - reverse(x))) / jnp.max(jnp.abs(reverse(x))))
        times = median_times({"forward": forward, "reverse": reverse, "plan": ours}, x, args.repeat)
        t_forward, t_reverse, t_plan = times["forward"], times["reverse"], times["plan"]
        predicted = plan.speedup
        measured = min(t_forward, t_reverse) / t_plan
        ratio = measured / predicted
        checks = [measured >= 0.95]
        if predicted >= 2:
            checks.append(ratio >= 0.8)
        if name.startswith("autoencoder"):
            checks.append(measured >= 5)
        verdict = "ok" if all(checks) else "MISS"
        print(
            f"{name:<38} {plan.mode:>7} {predicted:>6.2f}x {1e3 * t_forward:>10.3f} {1e3 * t_reverse:>10.3f} "
            f"{1e3 * t_plan:>9.3f} {measured:>8.2f}x {ratio:>6.2f}  {verdict} (rel err {error:.1e})"
        )


if __name__ == "__main__":
    main()
