"""chainorder.jacobian as a drop-in: steady-state and first-call time against jax.jacfwd / jax.jacrev.

Run: python benchmarks/bench_dropin.py [--repeat 40] [--first 3]

Steady state: jax.jit of jax.jacfwd(f), jax.jacrev(f), chainorder.jacobian(f) (its default: the FMA-optimal
plan unless the time-optimal one is predicted 1.5x faster on the saved machine profile) and
chainorder.jacobian(f, objective="time"), warmed up, medians
of --repeat interleaved runs in rotating order; "steady" is the better of jacfwd/jacrev over ours
(>= 1: not slower; target >= 0.95); "control" the same ratio for a second jitted copy of the faster
pure mode, i.e. the same program as the better one: how far apart identical programs time here.

First call: a fresh function each time, jax.jit(jax.jacobian(f)) against chainorder.jacobian(f)
(its analysis included), from call to result, median of --first interleaved rounds; the ratio is
ours over jax's (target <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder.front.tracedzoo import layer_norm_mlp
from chainorder.front.zoo import ZOO, composed, dense_chain, median_times


def rk4(width: int, steps: int):
    weight = jnp.asarray(np.random.default_rng(0).standard_normal((width, width)) / np.sqrt(width), jnp.float32)

    def field(v):
        return jnp.tanh(weight @ v) - 0.1 * v

    def f(y):
        h = 0.05
        for _ in range(steps):
            k1 = field(y)
            k2 = field(y + h / 2 * k1)
            k3 = field(y + h / 2 * k2)
            k4 = field(y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y

    return f, jnp.linspace(-1, 1, width, dtype=jnp.float32)


def cases():
    for seed, (name, dims) in enumerate(ZOO.items()):
        functions, x = dense_chain(dims, seed, jnp.float32)
        yield name, composed(functions), x
    for name, dims in (("tiny 4-8-4", [4, 8, 4]), ("scalar-to-wide 1-100-500-2000", [1, 100, 500, 2000])):
        functions, x = dense_chain(dims, 0, jnp.float32)
        yield name, composed(functions), x
    f, x = rk4(32, 20)
    yield "unrolled RK4 (20 steps, width 32)", f, x
    f, x = layer_norm_mlp([256, 1024, 32, 1024, 8])
    yield "traced layer-norm MLP 256-1024-32-1024-8", f, x


def _once(function, x) -> float:
    jax.block_until_ready(function(x))
    start = time.perf_counter()
    jax.block_until_ready(function(x))
    return time.perf_counter() - start


def first_call(make, x) -> float:
    start = time.perf_counter()
    jax.block_until_ready(make()(x))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--first", type=int, default=3)
    parser.add_argument("--only", default=None, help="the cases whose name contains this")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32; steady: median of {args.repeat}, "
          f"first call: median of {args.first}")
    profile = chainorder.machine_profile()
    source = "measured" if profile.calibrated else "analytic default"
    print(f"time: objective 'time' on the {source} profile of {profile.device_kind}")
    header = (f"{'function':<36} {'plan':>8} {'jacfwd ms':>10} {'jacrev ms':>10} {'ours ms':>9} {'steady':>7} "
              f"{'control':>9} {'time plan':>10} {'time ms':>8} {'steady':>7} "
              f"{'jax 1st s':>10} {'ours 1st s':>11} {'1st ratio':>10}")
    print(header)
    print("-" * len(header))
    for name, f, x in cases():
        if args.only and args.only not in name:
            continue
        ours = chainorder.jacobian(f)
        by_time = chainorder.jacobian(f, objective="time")
        jitted = {
            "fwd": jax.jit(jax.jacfwd(f)),
            "rev": jax.jit(jax.jacrev(f)),
            "ours": jax.jit(ours),
            "time": jax.jit(by_time),
        }
        faster = min(("fwd", "rev"), key=lambda name: _once(jitted[name], x))
        # a second copy of the faster pure mode: the same program, so its ratio shows the noise
        jitted["control"] = jax.jit(jax.jacfwd(f) if faster == "fwd" else jax.jacrev(f))
        times = median_times(jitted, x, args.repeat)
        (plan,) = ours.plans.values()
        (time_plan,) = by_time.plans.values()
        firsts = {"jax": [], "ours": []}
        for _ in range(args.first):
            firsts["jax"].append(first_call(lambda f=f: jax.jit(jax.jacobian(lambda v: f(v))), x))
            firsts["ours"].append(first_call(lambda f=f: chainorder.jacobian(lambda v: f(v)), x))
        jax_first, our_first = statistics.median(firsts["jax"]), statistics.median(firsts["ours"])
        best = min(times["fwd"], times["rev"])
        print(
            f"{name:<36} {plan.mode if plan else 'jax':>8} {1e3 * times['fwd']:>10.3f} {1e3 * times['rev']:>10.3f} "
            f"{1e3 * times['ours']:>9.3f} {best / times['ours']:>6.2f}x {best / times['control']:>8.2f}x "
            f"{time_plan.mode if time_plan else 'jax':>10} {1e3 * times['time']:>8.3f} {best / times['time']:>6.2f}x "
            f"{jax_first:>10.2f} {our_first:>11.2f} {our_first / jax_first:>9.2f}x"
        )


if __name__ == "__main__":
    main()
