"""Out-of-core Jacobians: a 20000 -> 16 -> 20000 Jacobian (1.6 GB in float32) within a 200 MB budget.

Run: python benchmarks/bench_outofcore.py [--width 20000] [--budget 200MB]

The Jacobian is written into an np.memmap file in blocks (chainorder.jacobian(f, memory_limit=...,
out=...)). Reported: wall time, blocks, the largest error against jax.jacobian on a sample of
columns, and the process's anonymous resident memory (RssAnon of /proc/self/status: heap and XLA
buffers, not the memmap's file pages), sampled every 2 ms: the baseline before, and the peak.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

import chainorder
from chainorder.core.budget import budget_elements


def rss_anon() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.running = rss_anon(), True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_anon())
            time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=20000)
    parser.add_argument("--budget", default="200MB")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    w1 = jnp.asarray(rng.standard_normal((16, args.width)) / np.sqrt(args.width), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((args.width, 16)) / 4, jnp.float32)

    def f(v):
        return jnp.tanh(w2 @ jnp.sin(w1 @ v))

    x = jnp.linspace(-1.0, 1.0, args.width, dtype=jnp.float32)
    jax.block_until_ready(f(x))
    with tempfile.TemporaryDirectory() as folder:
        out = np.memmap(os.path.join(folder, "J.f32"), dtype=np.float32, mode="w+", shape=(args.width, args.width))
        baseline = rss_anon()
        sampler = PeakSampler()
        sampler.start()
        start = time.perf_counter()
        chainorder.jacobian(f, memory_limit=args.budget, out=out)(x)
        out.flush()
        seconds = time.perf_counter() - start
        sampler.running = False
        sampler.join()
        columns = rng.choice(args.width, 8, replace=False)
        expected = jax.vmap(lambda e: jax.jvp(f, (x,), (e,))[1])(jnp.eye(args.width, dtype=jnp.float32)[columns]).T
        error = float(np.abs(np.asarray(out[:, columns]) - np.asarray(expected)).max())
        budget = budget_elements(args.budget, "float32") * 4
        print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, float32")
        print(f"Jacobian {args.width} x {args.width}: {args.width**2 * 4 / 1e9:.2f} GB into an np.memmap")
        print(f"budget {args.budget} ({budget / 1e6:.0f} MB)  time {seconds:.1f} s  max error (8 columns) {error:.1e}")
        print(
            f"anonymous resident memory: {baseline / 1e6:.0f} MB before, peak {sampler.peak / 1e6:.0f} MB "
            f"(+{(sampler.peak - baseline) / 1e6:.0f} MB during the computation)"
        )


if __name__ == "__main__":
    main()
