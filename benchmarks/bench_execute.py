"""The execution zoo (chainorder.front.zoo) with its targets: the optimal plan vs jax.jacfwd / jax.jacrev.

Run: python benchmarks/bench_execute.py [--repeat 25] [--dtype float32|float64] [--only NAME]
(`chainorder bench` prints the same table without the verdicts).

Targets: measured >= 0.8 x predicted where predicted >= 2; never below 0.95 x the best of
jacfwd/jacrev; the bottleneck autoencoder at least 5x.
"""

from __future__ import annotations

import argparse

from chainorder.front.zoo import ZooResult, format_table, run_zoo


def verdict(result: ZooResult) -> str:
    checks = [result.measured >= 0.95]
    if result.predicted >= 2:
        checks.append(result.measured >= 0.8 * result.predicted)
    if result.name.startswith("autoencoder"):
        checks.append(result.measured >= 5)
    return "ok" if all(checks) else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--only", default=None, help="run the zoo chains whose name contains this")
    parser.add_argument("--scale", type=int, default=1, help="every width times this (e.g. 8 on a GPU)")
    args = parser.parse_args()
    results = run_zoo(args.repeat, args.dtype, args.only, scale=args.scale)
    table = format_table(results, args.repeat, args.dtype).splitlines()
    print("\n".join(table[:3]))
    for line, result in zip(table[3:], results):
        print(f"{line}  {verdict(result)}")


if __name__ == "__main__":
    main()
