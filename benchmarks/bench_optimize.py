"""How long optimize() takes on random chains of q layers (issue: q = 1000 under 1 s).

Run: python benchmarks/bench_optimize.py [--repeat 3]

Dims are uniform in 1..1000 and edges in 1..10^5 (tangent = adjoint = edges),
the same seed every run; each time is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial

from chainorder import Chain, Layer, optimize


def random_chain(q: int, seed: int = 0) -> Chain:
    rng = random.Random(seed)
    dims = [rng.randint(1, 1000) for _ in range(q + 1)]
    return Chain([Layer(dims[i], dims[i + 1], edges=rng.randint(1, 10**5)) for i in range(q)])


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,100,1000,2000")
    args = parser.parse_args()
    print(f"{'q':>6} {'optimal s':>10} {'parallel s':>11} {'tape-limited s':>15} {'speedup vs best pure':>21}")
    for q in (int(s) for s in args.sizes.split(",")):
        chain = random_chain(q)
        repeat = args.repeat if q <= 1000 else 1
        plan = optimize(chain)
        sequential = best_time(partial(optimize, chain), repeat)
        parallel = best_time(partial(optimize, chain, parallel=True), repeat)
        limited = best_time(partial(optimize, chain, tape_limit=3 * 10**5), repeat)
        print(f"{q:>6} {sequential:>10.3f} {parallel:>11.3f} {limited:>15.3f} {plan.speedup:>20.1f}x")


if __name__ == "__main__":
    main()
