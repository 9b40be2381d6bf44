"""Measuring a machine profile, saving it, and loading it for the device JAX runs on.

:func:`calibrate` times what plans do on the default device: matrix products of square
and thin shapes (fitting the peak rate and the half-rate dimension of
:class:`~chainorder.core.profile.MachineProfile`), an array write (bandwidth) and, on a
CPU, writes of larger fresh arrays (the write factors), a chain of tiny dependent
kernels (fixed cost per kernel), and forward and reverse mode through dense tanh chains
(the JVP and VJP factors; on a CPU, those of wide steps apart). It takes well under a
minute on a 2-core CPU and saves the profile as JSON in the user's cache directory
(``$CHAINORDER_CACHE``, else ``$XDG_CACHE_HOME/chainorder``, else
``~/.cache/chainorder``), keyed by platform, device kind and JAX version.

:func:`machine_profile` loads that file for the current device (once per
process); when it is missing or unreadable, it warns once, in one line, and
returns the analytic default for the platform.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.chain import Chain
from ..core.layer import OP_FAMILIES, Layer
from ..core.profile import MachineProfile, default_profile
from ..core.pure import forward_steps, reverse_steps
from ..core.timing import TimeModel
from .seedslast import column_jvps, jacfwd_seeds_last

__all__ = ["calibrate", "machine_profile", "profile_path", "ProfileWarning"]


class ProfileWarning(UserWarning):
    """No measured machine profile could be used; predicted times use the analytic default."""


def profile_path(device=None) -> Path:
    """Where the profile of ``device`` (default: JAX's first device) is saved.

    >>> profile_path().suffix
    '.json'
    """
    device = device or jax.devices()[0]
    root = os.environ.get("CHAINORDER_CACHE")
    if root is None:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainorder")
    name = re.sub(r"[^A-Za-z0-9.]+", "-", f"{device.platform}-{device.device_kind}-jax{jax.__version__}").strip("-")
    return Path(root) / f"profile-{name}.json"


def machine_profile(device=None) -> MachineProfile:
    """The measured profile of ``device`` if one was saved, else its platform's default (warning once).

    >>> machine_profile().gemm_peak > 0
    True
    """
    device = device or jax.devices()[0]
    return _load(str(profile_path(device)), device.platform)


@functools.cache
def _load(path: str, platform: str) -> MachineProfile:
    try:
        return MachineProfile.from_json(Path(path).read_text())
    except FileNotFoundError:
        reason = "no measured machine profile"
    except (OSError, ValueError, UnicodeDecodeError) as error:
        reason = f"unreadable machine profile {path} ({error})"
    warnings.warn(
        f"chainorder: {reason}; predicted times use the analytic {platform} default (run `chainorder calibrate`)",
        ProfileWarning,
        stacklevel=3,
    )
    return default_profile(platform)


# -- measuring ---------------------------------------------------------------------
def _median_time(function: Callable, *args, repeat: int, budget: float = 0.05) -> float:
    """Median of at least ``repeat`` timings, and of as many more as fit in ``budget`` seconds
    (microsecond programs need hundreds of runs for a stable median)."""
    jax.block_until_ready(function(*args))
    times: list[float] = []
    spent = 0.0
    while len(times) < repeat or (spent < budget and len(times) < 5000):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


#: the GEMM table and the bandwidth are measured in this many rounds over all their entries, each
#: entry's fastest round kept: a slow spell of the machine only lengthens times, and it hits one
#: round of every entry rather than every timing of a few
_ROUNDS = 3

#: seconds the GEMM table's products run before they are timed: in a fresh process here the
#: matrix-vector products ran at 8-14 GFMA/s for the first 0.2-0.8 s and at 15-19 after, in
#: six processes out of six
_WARM_UP = 1.0

#: a GEMM table whose rate falls by more than this fraction as the smallest side grows was measured
#: while the machine slowed down (here once: 177 GFMA/s at 64, 142 at 256, 121 at 1024): it is measured
#: again, at most this many times, each entry keeping its fastest time
_DIP, _ATTEMPTS = 0.15, 3


def _warm_up(measurements: list[tuple[Callable, tuple]], seconds: float) -> None:
    """Run every ``(function, args)`` in turn for ``seconds``, untimed."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for function, args in measurements:
            jax.block_until_ready(function(*args))


def _fastest_rounds(measurements: list[tuple[Callable, tuple]], repeat: int, tick: Callable[[], None]) -> list[float]:
    """For each ``(function, args)``: the least over :data:`_ROUNDS` rounds of its median time
    (:func:`_median_time`, with a round's share of the timings and the budget)."""
    rounds = []
    for _ in range(_ROUNDS):
        share = -(-repeat // _ROUNDS)
        rounds.append([_median_time(f, *args, repeat=share, budget=0.05 / _ROUNDS) for f, args in measurements])
        tick()
    return [min(times) for times in zip(*rounds)]


def _dips(rates: Sequence[float]) -> bool:
    """Whether a rate falls by more than :data:`_DIP` below one of a narrower side's.

    >>> _dips([16e9, 60e9, 177e9, 142e9]), _dips([16e9, 60e9, 177e9, 170e9])
    (True, False)
    """
    return any(rate < (1 - _DIP) * max(rates[:index]) for index, rate in enumerate(rates) if index)


def _gemm_rates(dims: tuple[int, ...], repeat: int, tick: Callable[[], None]) -> tuple[float, ...]:
    """For each ``d``: the median rate of the products whose smallest side ``d`` is on the
    left, inside or on the right, the other sides the largest of ``dims`` (measured again where
    the table :func:`_dips`)."""
    largest = dims[-1]
    rng = np.random.default_rng(0)
    product = jax.jit(jnp.matmul)
    shapes = [sorted({(d, largest, largest), (largest, d, largest), (largest, largest, d)}) for d in dims]
    measurements = []
    for m, k, n in (shape for group in shapes for shape in group):
        a = jnp.asarray(rng.standard_normal((m, k)), jnp.float32)
        b = jnp.asarray(rng.standard_normal((k, n)), jnp.float32)
        measurements.append((product, (a, b)))
    _warm_up(measurements, _WARM_UP)
    seconds: list[float] = []
    for _ in range(_ATTEMPTS):
        again = _fastest_rounds(measurements, repeat, tick)
        seconds = [min(pair) for pair in zip(seconds, again)] if seconds else again
        flat = iter(seconds)
        rates = tuple(statistics.median(m * k * n / next(flat) for m, k, n in group) for group in shapes)
        if not _dips(rates):
            break
    return rates


def _bandwidth(rows: int, columns: int, repeat: int) -> float:
    """Bytes per second of writing a fresh ``rows x columns`` float32 array (an outer product)."""
    x, y = jnp.linspace(0.0, 1.0, rows, dtype=jnp.float32), jnp.linspace(0.0, 1.0, columns, dtype=jnp.float32)
    (seconds,) = _fastest_rounds([(jax.jit(lambda u, v: u[:, None] * v[None, :]), (x, y))], repeat, lambda: None)
    return 4 * rows * columns / seconds


#: fresh blocks whose write calibrate() times on a CPU, as multiples of the bandwidth's own block
#: (8 MiB: 16, 32 and 128 MiB, either side of glibc's 32 MiB mmap threshold)
_WRITE_MULTIPLES = (2, 4, 16)


def _write_factors(rows: int, columns: int, bandwidth: float, repeat: int) -> dict[str, tuple]:
    """``write_sizes`` and ``write_factors``: the time per byte of writing a fresh block of each
    of :data:`_WRITE_MULTIPLES` times ``rows x columns`` float32 over ``bandwidth``'s, at least 1 (a
    larger block written faster is the noise of two measurements: 0.59 at 16 MiB in one run here)."""
    sizes = tuple(4 * rows * columns * multiple for multiple in _WRITE_MULTIPLES)
    factors = tuple(max(1.0, bandwidth / _bandwidth(rows * multiple, columns, repeat)) for multiple in _WRITE_MULTIPLES)
    return {"write_sizes": sizes, "write_factors": factors}


def _step_overhead(repeat: int) -> float:
    weight = jnp.eye(8, dtype=jnp.float32) * 0.5

    def chained(count: int):
        def run(v):
            for _ in range(count):
                v = jnp.tanh(weight @ v)
            return v

        return jax.jit(run)

    x = jnp.ones(8, jnp.float32)
    long, short = _median_time(chained(65), x, repeat=repeat), _median_time(chained(1), x, repeat=repeat)
    return max((long - short) / 64, 0.0)


def _tanh_chain(width: int, layers: int) -> tuple[Callable[[Any], Any], Any, Chain]:
    """A dense ``tanh(W v)`` chain of ``layers`` square layers: the function, an input, its Chain."""
    rng = np.random.default_rng(1)
    weights = [jnp.asarray(rng.standard_normal((width, width)) / np.sqrt(width), jnp.float32) for _ in range(layers)]

    def f(v):
        for weight in weights:
            v = jnp.tanh(weight @ v)
        return v

    return f, jnp.linspace(-1.0, 1.0, width, dtype=jnp.float32), Chain.from_dims([width] * (layers + 1))


def _primal_overhead(profile: MachineProfile, chains, repeat: int) -> float:
    """Seconds per layer of the primal pass beyond its arithmetic at the matrix-vector rate: the
    median over the mode chains of (the jitted function's time - that arithmetic) / layers."""
    per_layer = []
    for width, layers in chains:
        f, x, chain = _tanh_chain(width, layers)
        arithmetic = TimeModel(chain, dataclasses.replace(profile, primal_overhead=0.0)).primal_time()
        per_layer.append((_median_time(jax.jit(f), x, repeat=repeat) - arithmetic) / layers)
    return max(statistics.median(per_layer), 0.0)


def _mode_times(profile: MachineProfile, width: int, layers: int, repeat: int) -> list[tuple[float, float, float]]:
    """For forward mode (as plans run it: seeds kept last) and jacrev of a dense tanh chain:
    (measured seconds, the model's arithmetic at factor 1, the model's bytes, step overheads and
    primal pass), the per-layer overheads left out."""
    f, x, chain = _tanh_chain(width, layers)
    unit = TimeModel(chain, profile)  # factors 1, per-layer overheads 0
    rows = []
    for make, steps in ((jacfwd_seeds_last, forward_steps(chain)), (jax.jacrev, reverse_steps(chain))):
        measured = _median_time(jax.jit(make(f)), x, repeat=repeat)
        arithmetic = sum(step.cost / float(profile.gemm_rate(width)) for step in steps)  # every step has width seeds
        rows.append((measured, arithmetic, sum(unit.steps_time(steps)) - arithmetic + unit.primal_time()))
    return rows


def _mode_rates(profile: MachineProfile, chains, repeat: int, tick: Callable[[], None]):
    """Fit, per direction, ``measured = factor * arithmetic + overhead * layers + rest`` over the chains
    (relative least squares, both non-negative): the JVP/VJP factors and per-layer overheads. Each
    time is the median of three rounds over all chains (one round alone was off by 1.5x once here)."""
    rounds = [[_mode_times(profile, width, layers, repeat) for width, layers in chains] for _ in range(3)]
    measured = []
    for index, (_, layers) in enumerate(chains):
        rows = []
        for direction in (0, 1):
            seconds = statistics.median(one[index][direction][0] for one in rounds)
            rows.append((seconds, *rounds[0][index][direction][1:]))
        measured.append((layers, rows))
        tick()
    fits = []
    for direction in (0, 1):
        matrix = np.array([[rows[direction][1], layers] for layers, rows in measured])
        target = np.array([rows[direction][0] - rows[direction][2] for layers, rows in measured])
        scale = np.array([rows[direction][0] for _, rows in measured])[:, None]
        (factor, overhead), *_ = np.linalg.lstsq(matrix / scale, target / scale[:, 0], rcond=None)
        fits.append((max(factor, 0.05), max(overhead, 0.0)))
    return fits


#: (width, layers) of the dense tanh chains whose JVP/VJP factors calibrate() measures one by one on
#: a CPU: steps that wide run near the GEMM rate (factors 0.84-1.16 at 1024-2048 seeds here), where the
#: fit over the narrower mode chains, whose fixed costs weigh more, says 1.1-1.7
_WIDE_MODE_CHAINS = ((1024, 2), (2048, 2))


def _wide_mode_factors(measured: MachineProfile, fitted: MachineProfile, mode_chains, repeat: int) -> dict[str, tuple]:
    """``mode_dims`` and both factor tables: the fitted factors (one each in ``fitted``, fitted on
    ``mode_chains``) at the widest of those chains' seeds, then each of :data:`_WIDE_MODE_CHAINS`' own
    at its width (interpolated in ``log seeds`` between). ``measured``: the profile before the
    factors (factor 1, no per-layer cost)."""
    tangent, adjoint = [fitted.tangent_factors[0]], [fitted.adjoint_factors[0]]
    for width, layers in _WIDE_MODE_CHAINS:
        (tangent_time, *tangent_model), (adjoint_time, *adjoint_model) = _mode_times(measured, width, layers, repeat)
        for factors, seconds, (arithmetic, rest), overhead in (
            (tangent, tangent_time, tangent_model, fitted.tangent_overhead),
            (adjoint, adjoint_time, adjoint_model, fitted.adjoint_overhead),
        ):
            factors.append(max((seconds - rest - overhead * layers) / arithmetic, 0.05))
    widest = max(width for width, _ in mode_chains)
    return {
        "mode_dims": (widest, *(width for width, _ in _WIDE_MODE_CHAINS)),
        "tangent_factors": tuple(tangent),
        "adjoint_factors": tuple(adjoint),
    }


def _conv_layer(side: int) -> tuple[Callable[[Any], Any], Any, Layer]:
    """One ``tanh(conv(v))`` layer: a 3x3 convolution, 8 channels to 8 on a ``side x side`` image,
    flattened (``8 side^2`` wide): the function, an input, its Layer (with its ``conv_cost``)."""
    kernel = jnp.asarray(np.random.default_rng(2).standard_normal((8, 8, 3, 3)) / np.sqrt(72), jnp.float32)

    def f(v):
        image = v.reshape(1, 8, side, side)
        return jnp.tanh(jax.lax.conv_general_dilated(image, kernel, (1, 1), "SAME")).reshape(-1)

    return _measured_layer(f, jnp.linspace(-1.0, 1.0, 8 * side * side, dtype=jnp.float32))


def _norm_layer(width: int) -> tuple[Callable[[Any], Any], Any, Layer]:
    """One layer norm of a ``width``-vector (its mean and variance: two reductions, the elementwise
    operations around them): the function, an input, its Layer (with its ``reduction_cost``)."""

    def f(v):
        return (v - v.mean()) / jnp.sqrt(v.var() + 1e-5)

    return _measured_layer(f, jnp.linspace(-1.0, 1.0, width, dtype=jnp.float32))


def _measured_layer(f: Callable[[Any], Any], x: Any) -> tuple[Callable[[Any], Any], Any, Layer]:
    """``f``, ``x`` and ``f``'s Layer, dense (as JVPs and VJPs of all its columns and rows run it)."""
    return f, x, Chain.from_functions([f], x).without_structure()[0]


def _family_factors(profile: MachineProfile, family: str, repeat: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The factors of one family of operations (:data:`~chainorder.core.layer.OP_FAMILIES`) at each of
    :data:`_FAMILY_SEEDS`: ``seeds`` JVPs (kept last, as plans run them) and VJPs through the
    family's layer (a convolution, a layer norm), measured, against the model's time of the step that
    does them (the layer behind, or before, a free layer as wide as the seeds). The model's time is
    linear in the factor (``rest + factor * part``, ``part`` read off the model at factors 1 and 2),
    so each factor is ``(measured - rest) / part``."""
    f, x, layer = _FAMILY_LAYERS[family]()
    width = layer.in_dim
    rng = np.random.default_rng(3)
    factors: dict[str, list[float]] = {"tangent": [], "adjoint": []}
    free = {"edges": 0, "tangent_cost": 0, "adjoint_cost": 0}  # the seeds' layer: priced at nothing
    for seeds in _FAMILY_SEEDS:
        runs = (
            ("tangent", Chain([Layer(seeds, width, **free), layer]), column_jvps(f, x), (width, seeds)),
            ("adjoint", Chain([layer, Layer(width, seeds, **free)]), jax.vmap(jax.vjp(f, x)[1]), (seeds, width)),
        )
        for direction, chain, run, shape in runs:
            steps = forward_steps(chain) if direction == "tangent" else reverse_steps(chain)
            once, twice = (
                sum(TimeModel(chain, profile.with_family_factor(family, factor)).steps_time(steps))
                for factor in (1.0, 2.0)
            )
            part = twice - once
            seconds = _median_time(jax.jit(run), jnp.asarray(rng.standard_normal(shape), jnp.float32), repeat=repeat)
            measured = seconds - TimeModel(chain, profile).primal_time()
            factors[direction].append(max((measured - (once - part)) / part, 0.05))
    return tuple(factors["tangent"]), tuple(factors["adjoint"])


#: seed counts the families' factors are measured at, the side of the image convolved and the
#: width of the layer norm
_FAMILY_SEEDS = (16, 512)
_CONV_SIDE = 16
_NORM_WIDTH = 2048
#: the layer each family's factors are measured on
_FAMILY_LAYERS = {"conv": lambda: _conv_layer(_CONV_SIDE), "reduction": lambda: _norm_layer(_NORM_WIDTH)}

#: (seeds = width, layers) of the dense tanh chains the JVP/VJP rates are fitted on
_MODE_CHAINS = {"cpu": ((32, 16), (128, 4), (512, 2)), "other": ((128, 16), (1024, 4), (4096, 2))}


def calibrate(*, save: bool = True, progress: bool | None = None, repeat: int = 15) -> MachineProfile:
    """Measure the default device's profile (under a minute on a 2-core CPU) and save it.

    Parameters
    ----------
    save : bool
        Write it to :func:`profile_path`, where :func:`machine_profile` (and so
        every plan's ``predicted_time``) finds it from then on.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    repeat : int
        Timings per measurement (the median is kept).

    Returns
    -------
    MachineProfile
        ``calibrated=True``.

    See Also
    --------
    chainorder.core.profile.MachineProfile, chainorder.Plan.predicted_time
    """
    from tqdm.auto import tqdm  # noqa: PLC0415 - only calibration shows a bar

    device = jax.devices()[0]
    dims = (1, 4, 16, 64, 256, 1024) if device.platform == "cpu" else (1, 4, 16, 64, 256, 1024, 4096)
    show = progress if progress is not None else os.isatty(2)
    mode_chains = _MODE_CHAINS["cpu" if device.platform == "cpu" else "other"]
    steps = _ROUNDS + 4 + len(mode_chains) + len(OP_FAMILIES)
    with tqdm(total=steps, desc="calibrating", disable=not show, leave=False) as bar:
        rates = _gemm_rates(dims, repeat, bar.update)
        block = (2048, 1024) if device.platform == "cpu" else (16384, 8192)
        bandwidth = _bandwidth(*block, repeat)
        # a GPU's allocator pools device memory: no fresh pages, every block at the bandwidth
        writes = _write_factors(*block, bandwidth, repeat) if device.platform == "cpu" else {}
        bar.update()
        overhead = _step_overhead(repeat)
        bar.update()
        measured = MachineProfile(
            device.platform,
            device.device_kind,
            dims,
            rates,
            bandwidth,
            overhead,
            jax_version=jax.__version__,
            calibrated=True,
            **writes,
        )
        measured = dataclasses.replace(measured, primal_overhead=_primal_overhead(measured, mode_chains, repeat))
        bar.update()
        (tangent, tangent_overhead), (adjoint, adjoint_overhead) = _mode_rates(
            measured, mode_chains, repeat, bar.update
        )
        profile = dataclasses.replace(
            measured,
            tangent_overhead=tangent_overhead,
            adjoint_overhead=adjoint_overhead,
            tangent_factors=(tangent,),
            adjoint_factors=(adjoint,),
        )
        if device.platform == "cpu":
            profile = dataclasses.replace(profile, **_wide_mode_factors(measured, profile, mode_chains, repeat))
        bar.update()
        tables: dict[str, tuple] = {}
        for family in OP_FAMILIES:
            tangent_factors, adjoint_factors = _family_factors(profile, family, repeat)
            tables[f"{family}_dims"] = _FAMILY_SEEDS
            tables[f"{family}_tangent_factors"], tables[f"{family}_adjoint_factors"] = tangent_factors, adjoint_factors
            bar.update()
    profile = dataclasses.replace(profile, **tables)
    if save:
        path = profile_path(device)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(profile.to_json())
        _load.cache_clear()
    return profile
