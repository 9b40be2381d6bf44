"""The execution zoo: the optimal plan vs jax.jacfwd and jax.jacrev, in wall time.

Used by ``chainorder bench``, ``chainorder demo`` and ``benchmarks/`` (which adds
the targets and verdicts). For each chain: predicted speedup (min(forward,
reverse) cost / plan cost) and measured speedup (best of jacfwd/jacrev wall time
/ plan wall time). Everything is jitted and warmed up; times are medians of
``repeat`` interleaved runs, all in one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..backend.xlaoptions import plan_compiler_options
from ..core.chain import Chain
from ..core.optimize import optimize


def composed(functions: list[Callable]) -> Callable:
    """The function applying ``functions`` in order (a chain's layers as one function)."""

    def f(x):
        for function in functions:
            x = function(x)
        return x

    return f


#: the activations of :class:`DenseLayer`: the function and its derivative in terms of the
#: pre-activation ``p`` and the output ``y``
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (jnp.tanh, lambda p, y: 1 - y**2),
    "sin": (jnp.sin, lambda p, y: jnp.cos(p)),
    "identity": (lambda p: p, lambda p, y: jnp.ones_like(p)),
}


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """``activation(weight @ x + bias)`` (``weight`` None: the activation alone, elementwise;
    ``bias`` None: no bias): a layer of the zoo's models kept by its parts, so that a benchmark can
    write its Jacobian ``diag(activation'(weight @ x + bias)) weight`` by hand
    (``benchmarks/bench_roofline.py``)."""

    weight: jax.Array | None
    bias: jax.Array | None
    activation: str

    @property
    def __name__(self) -> str:
        return (
            self.activation
            if self.weight is None
            else f"{self.activation}(W x{' + b' if self.bias is not None else ''})"
        )

    def pre(self, x):
        """The pre-activation ``weight @ x + bias``."""
        if self.weight is not None:
            x = self.weight @ x
        return x if self.bias is None else x + self.bias

    def __call__(self, x):
        return ACTIVATIONS[self.activation][0](self.pre(x))

    def derivative(self, pre, y):
        """The activation's derivative at ``pre`` (whose output is ``y``): the diagonal of the layer's Jacobian."""
        return ACTIVATIONS[self.activation][1](pre, y)


def dense_layers(dims: list[int], seed: int, dtype) -> tuple[list[DenseLayer], jax.Array]:
    """tanh(W x) layers, with an elementwise sin layer after every third dense layer; and an input."""
    rng = np.random.default_rng(seed)
    layers: list[DenseLayer] = []
    for index in range(len(dims) - 1):
        weight = jnp.asarray(rng.standard_normal((dims[index + 1], dims[index])) / np.sqrt(dims[index]), dtype)
        layers.append(DenseLayer(weight, None, "tanh"))
        if index % 3 == 2:
            layers.append(DenseLayer(None, None, "sin"))
    x = jnp.asarray(rng.standard_normal(dims[0]), dtype)
    return layers, x


def dense_chain(dims: list[int], seed: int, dtype) -> tuple[list[Callable], jax.Array]:
    """The layers of :func:`dense_layers` as functions, and the input."""
    layers, x = dense_layers(dims, seed, dtype)
    return list(layers), x


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


def xla_bytes(function: Callable, *args) -> int:
    """What XLA holds for ``jax.jit(function)(*args)``: argument + output + temp bytes of the compiled
    program (``memory_analysis()``), the figure the memory model is checked against."""
    analysis = jax.jit(function).lower(*args).compile().memory_analysis()
    return analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes


def faults_per_call(function: Callable, *args, calls: int = 10) -> float | None:
    """Minor page faults per call of ``function(*args)`` (jitted and warmed up), from ``getrusage``;
    None where the platform does not count them. XLA on a CPU allocates a program's temporaries
    per call, and from glibc's 32 MiB ceiling on every page of them faults again each call
    (BENCHMARKS.md: the page faults of XLA's temporaries)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    for _ in range(2):
        jax.block_until_ready(function(*args))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        jax.block_until_ready(function(*args))
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def fresh_array(shape: tuple[int, ...]) -> Callable:
    """A jitted function of ``x`` that returns a fresh array of ``shape`` in ``x``'s dtype: the floor of
    any dense result of that shape (writing it), timed beside the functions it bounds."""
    return jax.jit(lambda x: jnp.zeros(shape, x.dtype).at[(0,) * len(shape)].set(jnp.ravel(x)[0]))


def median_times(functions: dict[str, Callable], x, repeat: int) -> dict[str, float]:
    """Median wall time of each function over the interleaved rounds of :func:`round_times`."""
    return {name: statistics.median(values) for name, values in round_times(functions, x, repeat).items()}


def round_times(functions: dict[str, Callable], x, repeat: int) -> dict[str, list[float]]:
    """Wall time of each function in each of ``repeat`` rounds. The functions take turns, so drifts in
    the machine's speed hit all of them alike, in a new random order each round
    (seeded), so that none follows the same neighbour more often than another: a
    rotating order puts the same function after a slow one (a 13 ms jacrev) in
    most rounds, which cost it 10-15% here. Each timed call follows an untimed
    call of the same function, so none pays for the caches another one emptied."""
    for function in functions.values():  # compile and warm up
        jax.block_until_ready(function(x))
        jax.block_until_ready(function(x))
    times: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    shuffle = np.random.default_rng(0).permutation
    for _ in range(repeat):
        for name in (names[index] for index in shuffle(len(names))):
            function = functions[name]
            jax.block_until_ready(function(x))
            start = time.perf_counter()
            jax.block_until_ready(function(x))
            times[name].append(time.perf_counter() - start)
    return times


@dataclass
class ZooResult:
    name: str
    mode: str
    predicted: float
    forward_ms: float
    reverse_ms: float
    plan_ms: float
    relative_error: float

    @property
    def measured(self) -> float:
        return min(self.forward_ms, self.reverse_ms) / self.plan_ms


def run_chain(name: str, dims: list[int], seed: int, dtype, repeat: int) -> ZooResult:
    functions, x = dense_chain(dims, seed, dtype)
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain)
    forward = jax.jit(jax.jacfwd(chain))
    reverse = jax.jit(jax.jacrev(chain))
    ours = jax.jit(plan.jacobian, compiler_options=plan_compiler_options(plan))  # as chainorder compiles it
    reference = reverse(x)
    error = float(jnp.max(jnp.abs(ours(x) - reference)) / jnp.max(jnp.abs(reference)))
    times = median_times({"forward": forward, "reverse": reverse, "plan": ours}, x, repeat)
    return ZooResult(
        name, plan.mode, plan.speedup, 1e3 * times["forward"], 1e3 * times["reverse"], 1e3 * times["plan"], error
    )


def zoo_chains(only: str | None = None, scale: int = 1) -> list[tuple[int, str, list[int]]]:
    """``(seed, name, dims)`` of the zoo's chains whose name contains ``only``, every width times
    ``scale`` (a GPU needs wider layers than a CPU before the arithmetic outweighs the dispatch)."""
    chosen = []
    for seed, (name, dims) in enumerate(ZOO.items()):
        if only and only not in name:
            continue
        chosen.append((seed, name if scale == 1 else f"{name} (x{scale})", [d * scale for d in dims]))
    return chosen


def run_zoo(
    repeat: int = 25,
    dtype: str = "float32",
    only: str | None = None,
    progress: Callable | None = None,
    scale: int = 1,
):
    """Run the zoo (widths times ``scale``); ``progress(done, total, name)`` is called before each chain."""
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    chosen = zoo_chains(only, scale)
    results = []
    for done, (seed, name, dims) in enumerate(chosen):
        if progress:
            progress(done, len(chosen), name)
        results.append(run_chain(name, dims, seed, jnp.dtype(dtype), repeat))
    if progress:
        progress(len(chosen), len(chosen), "done")
    return results


def format_table(results: list[ZooResult], repeat: int, dtype: str) -> str:
    lines = [f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {dtype}, median of {repeat}"]
    header = (
        f"{'chain':<38} {'plan':>7} {'pred':>7} {'jacfwd ms':>10} {'jacrev ms':>10} {'plan ms':>9} "
        f"{'measured':>9} {'ratio':>6}"
    )
    lines += [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.name:<38} {r.mode:>7} {r.predicted:>6.2f}x {r.forward_ms:>10.3f} {r.reverse_ms:>10.3f} "
            f"{r.plan_ms:>9.3f} {r.measured:>8.2f}x {r.measured / r.predicted:>6.2f}  (rel err {r.relative_error:.1e})"
        )
    return "\n".join(lines)
