"""Seeds sharded over 1, 2 and 4 forced host devices (this machine has 2 cores: report what it shows).

Run: python benchmarks/bench_sharding.py [--repeat 30]

Each device count runs in its own process (XLA_FLAGS=--xla_force_host_platform_device_count=D);
in each, jitted and interleaved (medians): jax.jacfwd, jax.jacrev, chainorder.jacobian(f) on one
device, and chainorder.jacobian(f, devices=jax.devices()) (one block of columns or rows per device).
With 2 and more devices also a plan scheduled on them (optimize(chain, threads=D), each step on its
device, dispatched eagerly) against the sequential plan jitted on one device.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import sys, jax, jax.numpy as jnp, numpy as np, chainorder
from chainorder.front.zoo import composed, dense_chain, median_times
repeat = int(sys.argv[1])
for name, dims in (("autoencoder 1024-512-16-512-1024", [1024, 512, 16, 512, 1024]),
                   ("square 512x3", [512, 512, 512, 512])):
    functions, x = dense_chain(dims, 0, jnp.float32)
    f = composed(functions)
    candidates = {"jacfwd": jax.jit(jax.jacfwd(f)), "jacrev": jax.jit(jax.jacrev(f)),
                  "ours, 1 device": jax.jit(chainorder.jacobian(f)),
                  "ours, sharded": jax.jit(chainorder.jacobian(f, devices=jax.devices()))}
    times = median_times(candidates, x, repeat)
    best = min(times["jacfwd"], times["jacrev"])
    cells = "  ".join(f"{1e3 * t:8.3f}" for t in times.values())
    print(f"{len(jax.devices())}  {name:<34} {cells}   {best / times['ours, sharded']:6.2f}x")

# a plan scheduled on the devices (optimize(chain, threads=D)): each step on its device
if len(jax.devices()) >= 2:
    from chainorder import Chain, optimize
    for name, dims in (("autoencoder 1024-512-16-512-1024", [1024, 512, 16, 512, 1024]),
                       ("two bottlenecks 1024-16-1024-16-1024-16-1024", [1024, 16, 1024, 16, 1024, 16, 1024]),
                       ("autoencoder 4096-2048-64-2048-4096", [4096, 2048, 64, 2048, 4096])):
        functions, x = dense_chain(dims, 0, jnp.float32)
        chain = Chain.from_functions(functions, x)
        sequential, scheduled = optimize(chain), optimize(chain, threads=len(jax.devices()))
        devices = jax.devices()
        times = median_times({"sequential": jax.jit(sequential.jacobian),
                              "scheduled": lambda v: scheduled.jacobian(v, devices=devices)}, x, repeat)
        used = len({slot.device for slot in scheduled.schedule})
        print(f"{len(devices)}  scheduled {name:<44} model {sequential.cost / scheduled.makespan:5.2f}x on {used} "
              f"threads; measured: sequential {1e3 * times['sequential']:.3f} ms, scheduled "
              f"{1e3 * times['scheduled']:.3f} ms ({times['sequential'] / times['scheduled']:.2f}x)")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print("jax on cpu, float32, ms (medians); last column: better of jacfwd/jacrev over sharded ours")
    print(f"D  {'function':<34} {'jacfwd':>8}  {'jacrev':>8}  {'1 device':>8}  {'sharded':>8}")
    for count in (1, 2, 4):
        environment = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.repeat)], env=environment, capture_output=True, text=True
        )
        print(done.stdout.rstrip() or done.stderr[-2000:])


if __name__ == "__main__":
    main()
