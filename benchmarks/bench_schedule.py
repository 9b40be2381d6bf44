"""The scheduled Jacobian chain problem against the reference solver (ACDA'25 data).

Run: python benchmarks/bench_schedule.py [--time-limit 10] [--lengths 3-8] [--every 1]

For every chain of ../shared/conformance/acda25_chains.tsv (its copy in tests/data) and every
thread count T from 2 to L-1: ``chainorder.optimize(chain, threads=T)``. Per length and T:
cases; proven (ours, and the reference branch and bound's within its 10 s); equal to the
reference's branch and bound; strictly better than an unproven reference value; worse than the
reference (DP heuristic or branch and bound: must be 0); our median and largest solve time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conformance import chain_of, read_acda25  # noqa: E402

from chainorder import optimize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--lengths", default="3-8")
    parser.add_argument("--every", type=int, default=1, help="take every n-th chain")
    args = parser.parse_args()
    low, high = (int(v) for v in args.lengths.split("-"))
    rows = [row for row in read_acda25()[:: args.every] if low <= len(row["layers"]) <= high]
    results: dict[tuple[int, int], list[dict]] = {}
    cases = [(row, threads) for row in rows for threads in range(2, len(row["layers"]))]
    for row, threads in tqdm(cases, desc="chains x threads", disable=not sys.stderr.isatty()):
        chain = chain_of(row["layers"])
        start = time.perf_counter()
        plan = optimize(chain, threads=threads, time_limit=args.time_limit)
        seconds = time.perf_counter() - start
        reference = row["bnb_makespan"][threads - 1]
        results.setdefault((len(chain), threads), []).append(
            dict(
                seconds=seconds,
                proven=plan.proven,
                reference_proven=bool(row["bnb_proven"][threads - 1]),
                equal=plan.makespan == reference,
                better=plan.makespan < reference,
                worse=plan.makespan > min(reference, row["dp_makespan"][threads - 1]),
            )
        )
    header = (
        f"{'L':>2} {'T':>2} {'cases':>5} {'proven':>6} {'ref proven':>10} {'equal':>5} {'better':>6} "
        f"{'worse':>5} {'median s':>8} {'max s':>7}"
    )
    print(f"time limit {args.time_limit} s per case; reference: branch and bound with a 10 s limit")
    print(header)
    print("-" * len(header))
    for (length, threads), items in sorted(results.items()):
        times = [item["seconds"] for item in items]
        print(
            f"{length:>2} {threads:>2} {len(items):>5} {sum(i['proven'] for i in items):>6} "
            f"{sum(i['reference_proven'] for i in items):>10} {sum(i['equal'] for i in items):>5} "
            f"{sum(i['better'] for i in items):>6} {sum(i['worse'] for i in items):>5} "
            f"{statistics.median(times):>8.3f} {max(times):>7.2f}"
        )
    every = [item for items in results.values() for item in items]
    print(
        f"all: {len(every)} cases, {sum(i['proven'] for i in every)} proven "
        f"(reference {sum(i['reference_proven'] for i in every)}), {sum(i['better'] for i in every)} better, "
        f"{sum(i['worse'] for i in every)} worse; {sum(i['seconds'] <= 1 for i in every)} within 1 s"
    )


if __name__ == "__main__":
    main()
