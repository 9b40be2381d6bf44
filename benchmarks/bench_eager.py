"""chainorder.jacobian called without jax.jit, against jax.jacfwd / jax.jacrev called the same way.

Run: python benchmarks/bench_eager.py [--repeat 20]

A drop-in is called as people call jax.jacobian: often eagerly. For issue 12's sparse rows:
medians of interleaved rounds (float32, ms) of jax.jacfwd and jax.jacrev called eagerly,
jax.jit(jax.jacfwd), chainorder.jacobian(f, sparse=True) called eagerly and under jax.jit, and
chainorder.jacobian(f) called eagerly. "eager x": the better eager jax mode over our eager
sparse=True; "vs jit": our eager sparse=True over our jitted one (1.0: nothing lost eagerly).
"""

from __future__ import annotations

import argparse

import jax

import chainorder
from chainorder.front.sparsezoo import sparse_cases
from chainorder.front.zoo import median_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32, ms (medians of {args.repeat})")
    columns = ["jacfwd", "jacrev", "jit(jacfwd)", "sparse", "jit(sparse)", "dense"]
    print(f"{'function':<32}" + "".join(f"{name:>12}" for name in columns) + f"{'eager x':>9}{'vs jit':>8}")
    for name, f, x in sparse_cases():
        sparse = chainorder.jacobian(f, sparse=True)
        functions = {
            "jacfwd": jax.jacfwd(f),
            "jacrev": jax.jacrev(f),
            "jit(jacfwd)": jax.jit(jax.jacfwd(f)),
            "sparse": sparse,
            "jit(sparse)": jax.jit(sparse),
            "dense": chainorder.jacobian(f),
        }
        times = {key: seconds * 1e3 for key, seconds in median_times(functions, x, args.repeat).items()}
        best = min(times["jacfwd"], times["jacrev"])
        print(
            f"{name:<32}" + "".join(f"{times[key]:>12.3f}" for key in columns)
            + f"{best / times['sparse']:>8.0f}x{times['sparse'] / times['jit(sparse)']:>8.2f}"
        )  # fmt: skip


if __name__ == "__main__":
    main()
