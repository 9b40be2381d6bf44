"""How long optimize() takes on random chains of q layers.

Run: python benchmarks/bench_optimize.py [--repeat 3] [--sizes 10,100,1000,2000]

Dims are uniform in 1..1000 and edges in 1..10^5 (tangent = adjoint = edges), the same
seed every run; each time is the best of --repeat runs (1 run for q > 1000). Columns:

- optimal, parallel, tape-limited: ``optimize(chain)``, ``parallel=True``, ``tape_limit=3e5``;
- cost DP: the cost table alone, without breaking cost ties by peak memory (so
  ``optimal / cost DP`` is what the memory tie-break costs);
- exact ints: dims uniform in 1..10^6 (``Chain.from_dims``), where costs pass 2^60 and the
  tables hold Python integers (screened in float64, compared exactly).

Targets: q = 1000 optimal <= 0.5 s; exact ints q = 1000 <= 2 s.
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial

from chainorder import Chain, Layer, optimize
from chainorder.core.dp import _CostDP
from chainorder.core.steps import Objective
from chainorder.core.table import CostTable


def random_chain(q: int, seed: int = 0) -> Chain:
    rng = random.Random(seed)
    dims = [rng.randint(1, 1000) for _ in range(q + 1)]
    return Chain([Layer(dims[i], dims[i + 1], edges=rng.randint(1, 10**5)) for i in range(q)])


def huge_chain(q: int, seed: int = 0) -> Chain:
    rng = random.Random(seed)
    return Chain.from_dims([rng.randint(1, 10**6) for _ in range(q + 1)])


def cost_table(chain: Chain) -> CostTable:
    return _CostDP(CostTable(chain, Objective.FMA, True, None)).run()


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
    print(f"{'q':>6} {'optimal s':>10} {'cost DP s':>10} {'parallel s':>11} {'tape-limited s':>15} "
          f"{'exact ints s':>13} {'speedup vs best pure':>21}")
    for q in (int(s) for s in args.sizes.split(",")):
        chain = random_chain(q)
        repeat = args.repeat if q <= 1000 else 1
        plan = optimize(chain)
        sequential = best_time(partial(optimize, chain), repeat)
        table_only = best_time(partial(cost_table, chain), repeat)
        parallel = best_time(partial(optimize, chain, parallel=True), repeat)
        limited = best_time(partial(optimize, chain, tape_limit=3 * 10**5), repeat)
        exact = best_time(partial(optimize, huge_chain(q)), repeat) if q <= 1000 else float("nan")
        print(f"{q:>6} {sequential:>10.3f} {table_only:>10.3f} {parallel:>11.3f} {limited:>15.3f} {exact:>13.3f} "
              f"{plan.speedup:>20.1f}x")


if __name__ == "__main__":
    main()
