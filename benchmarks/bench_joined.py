"""Steps through several segments of a traced program, joined against packed.

Run: python benchmarks/bench_joined.py [--repeat 30] [--samples 4] [--only NAME]

``chainorder.trace`` cuts a program where the live state is all-float. Inside a layer norm that
state holds the activations with their mean, then with their variance: a segment's function packs
them into one vector, the next one slices them out. A step through several segments used to run
their functions in turn, packing at every cut; now it runs them joined, as the program does
(``chainorder.backend.cuts.Stretch``, switched by ``cuts.JOIN`` while tracing). For each traced
model of ``chainorder.front.tracedzoo``, every distinct fidelity plan (forward, reverse,
fma-optimal, time-optimal, dense-only, tape-limited, ``--samples`` random ones) is compiled both
ways and timed with jacfwd and jacrev in the same interleaved rounds (medians). Prints each plan's
times, their ratio and the concatenations XLA kept in each program.
"""

from __future__ import annotations

import argparse
import copy
import re

import jax

import chainorder
from chainorder.backend import cuts
from chainorder.front.fidelity import distinct, fidelity_plans
from chainorder.front.tracedzoo import traced_models
from chainorder.front.zoo import median_times


def compiled(plan, x, join: bool):
    """The plan's Jacobian compiled with its segments joined or packed (read while tracing; a copy
    of the plan, whose compiled function is not the cached one of the other way)."""
    cuts.JOIN = join
    try:
        return jax.jit(copy.copy(plan).jacobian).lower(x).compile()
    finally:
        cuts.JOIN = True


def concatenations(function) -> int:
    return len(re.findall(r"= \S+ concatenate\(", function.as_text()))


def compare(name: str, f, x, profile, repeat: int, samples: int) -> None:
    chain = chainorder.trace(f, x)
    plans = fidelity_plans(chain, profile, samples=samples)
    functions = {mode.__name__: jax.jit(mode(f)).lower(x).compile() for mode in (jax.jacfwd, jax.jacrev)}
    names = distinct(plans)
    for plan_name in names:
        functions[f"{plan_name} packed"] = compiled(plans[plan_name], x, False)
        functions[f"{plan_name} joined"] = compiled(plans[plan_name], x, True)
    times = median_times(functions, x, repeat)
    print(f"\n{name}: {len(chain)} layers, dims {list(chain.dims)}")
    print(f"  jacfwd {1e3 * times['jacfwd']:.3f} ms, jacrev {1e3 * times['jacrev']:.3f} ms")
    print(f"  {'plan':<14} {'packed ms':>10} {'joined ms':>10} {'packed/joined':>14} {'concatenations':>16}")
    for plan_name in names:
        packed, joined = times[f"{plan_name} packed"], times[f"{plan_name} joined"]
        counts = " -> ".join(str(concatenations(functions[f"{plan_name} {way}"])) for way in ("packed", "joined"))
        print(f"  {plan_name:<14} {1e3 * packed:>10.3f} {1e3 * joined:>10.3f} {packed / joined:>13.2f}x {counts:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    profile = chainorder.calibrate(save=False)
    print(f"jax {jax.__version__} on {profile.device_kind}, float32; medians of {args.repeat} interleaved rounds")
    for name, f, x in traced_models(args.only):
        compare(name, f, x, profile, args.repeat, args.samples)


if __name__ == "__main__":
    main()
