"""A machine profile: the rates that turn a step's FMAs and bytes into seconds.

The cost model (:mod:`chainorder.core.costs`) counts FMAs exactly; a step's
time also depends on the shape of its arithmetic and on the bytes it moves.
:class:`MachineProfile` holds what :mod:`chainorder.core.timing` needs for that:

==================  =================================================================
field               meaning
==================  =================================================================
``gemm_dims``       smallest GEMM dimensions the rates were measured at (rising)
``gemm_rates``      FMAs per second of a product whose smallest side is each of
                    ``gemm_dims`` (thin products run far below square ones);
                    between them the rate is interpolated in ``log d``, beyond
                    them it is the nearest one's
``bandwidth``       bytes per second written or read by a step's Jacobian blocks
``write_sizes``     block sizes in bytes (rising) from which on a step's result, a fresh
                    block, is written slower than ``bandwidth``
``write_factors``   time per byte of writing such a block over ``bandwidth``'s, per
                    ``write_sizes`` entry, each from its size up to the next (a step, not
                    interpolated: glibc's malloc hands out blocks of 32 MiB or more as
                    fresh mappings, whose pages fault on first touch, 4 GB/s here)
``step_overhead``   seconds of fixed cost per step (a kernel launched)
``tangent_overhead`` seconds of fixed cost per layer a JVP propagation goes through
``adjoint_overhead`` the same for a VJP (small layers are dominated by these)
``primal_overhead`` seconds of fixed cost per layer of the primal pass every plan
                    runs once (its arithmetic is priced at the matrix-vector rate)
``mode_dims``       seed counts the JVP/VJP factors were measured at (rising)
``tangent_factors`` time of a JVP's FMA over a GEMM FMA at the same seed count,
                    per ``mode_dims`` entry (interpolated in ``log seeds``)
``adjoint_factors`` the same for a VJP (it also records and reads the tape)
``conv_dims``       seed counts the convolution factors were measured at (rising)
``conv_tangent_factors`` time of a JVP's FMA in a convolution over one in a dense layer, per
                    ``conv_dims`` entry (interpolated in ``log seeds``): the ``conv_cost``
                    share of a layer's JVP FMAs is priced this many times higher (XLA's
                    CPU convolutions run far below its GEMMs)
``conv_adjoint_factors`` the same for a VJP (a transposed convolution)
``reduction_dims``, ``reduction_tangent_factors``, ``reduction_adjoint_factors``
                    the same for the ``reduction_cost`` share (reductions: a pass over
                    memory each, where XLA fuses elementwise operations into the
                    GEMM's neighbours; :data:`chainorder.core.layer.OP_FAMILIES`)
``itemsize``        bytes per element (4: float32)
==================  =================================================================

Measured profiles come from ``chainorder.calibrate()`` (the JAX backend) and
are saved as JSON; without one, :data:`DEFAULT_PROFILES` gives an analytic
roofline per platform (stated, not measured: ``calibrated`` is ``False``).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layer import OP_FAMILIES

__all__ = ["MachineProfile", "DEFAULT_PROFILES", "default_profile", "PROFILE_VERSION"]

PROFILE_VERSION = 1
_RATES = ("bandwidth", "step_overhead", "tangent_overhead", "adjoint_overhead", "primal_overhead")
_MAY_BE_ZERO = ("step_overhead", "tangent_overhead", "adjoint_overhead", "primal_overhead")


@dataclass(frozen=True)
class MachineProfile:
    """How fast one device does what plans do (see the module docstring for each field).

    Parameters
    ----------
    platform : str
        ``"cpu"``, ``"gpu"`` or ``"tpu"``.
    device_kind : str
        As JAX names it (``jax.devices()[0].device_kind``).
    gemm_dims : tuple of int
        Rising, at least one.
    gemm_rates : tuple of float
        One per dimension, positive and finite.
    bandwidth, step_overhead : float
        Positive and finite (``step_overhead`` may be 0).
    tangent_overhead, adjoint_overhead : float
        Non-negative and finite (default 0).
    mode_dims : tuple of int
        Rising seed counts (default ``(1,)``: one factor for all).
    tangent_factors, adjoint_factors : tuple of float
        One per ``mode_dims`` entry, positive and finite (default 1.0).
    itemsize : int
        Bytes per element.
    jax_version : str or None
        The JAX version it was measured with.
    calibrated : bool
        Measured (``True``) or an analytic default.
    primal_overhead : float
        Non-negative and finite (default 0: profiles saved before it existed).
    conv_dims : tuple of int
        Rising seed counts (default ``(1,)``).
    conv_tangent_factors, conv_adjoint_factors : tuple of float
        One per ``conv_dims`` entry, positive and finite (default 1.0: a convolution's FMA costs
        a dense layer's; profiles saved before they existed).
    reduction_dims, reduction_tangent_factors, reduction_adjoint_factors
        The same for reductions.
    write_sizes : tuple of int
        Rising block sizes in bytes (default ``(1,)``).
    write_factors : tuple of float
        One per ``write_sizes`` entry, positive and finite (default 1.0: every block written at
        ``bandwidth``; profiles saved before they existed).

    Raises
    ------
    ValueError
        For a rate that is not a positive finite number.

    Examples
    --------
    >>> profile = DEFAULT_PROFILES["cpu"]
    >>> MachineProfile.from_json(profile.to_json()) == profile
    True
    >>> float(profile.gemm_rate(16)) == profile.gemm_rates[2]
    True
    """

    platform: str
    device_kind: str
    gemm_dims: tuple[int, ...]
    gemm_rates: tuple[float, ...]
    bandwidth: float
    step_overhead: float
    tangent_overhead: float = 0.0
    adjoint_overhead: float = 0.0
    mode_dims: tuple[int, ...] = (1,)
    tangent_factors: tuple[float, ...] = (1.0,)
    adjoint_factors: tuple[float, ...] = (1.0,)
    itemsize: int = 4
    jax_version: str | None = None
    calibrated: bool = False
    primal_overhead: float = 0.0
    conv_dims: tuple[int, ...] = (1,)
    conv_tangent_factors: tuple[float, ...] = (1.0,)
    conv_adjoint_factors: tuple[float, ...] = (1.0,)
    reduction_dims: tuple[int, ...] = (1,)
    reduction_tangent_factors: tuple[float, ...] = (1.0,)
    reduction_adjoint_factors: tuple[float, ...] = (1.0,)
    write_sizes: tuple[int, ...] = (1,)
    write_factors: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        self._check_table("gemm_dims", ("gemm_rates",))
        self._check_table("mode_dims", ("tangent_factors", "adjoint_factors"))
        self._check_table("write_sizes", ("write_factors",))
        for family in OP_FAMILIES:
            self._check_table(f"{family}_dims", (f"{family}_tangent_factors", f"{family}_adjoint_factors"))
        for name in _RATES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"machine profile: {name} must be a finite number, got {value!r}")
            if value < 0 or (value == 0 and name not in _MAY_BE_ZERO):
                raise ValueError(f"machine profile: {name} must be positive, got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.itemsize, bool) or not isinstance(self.itemsize, int) or self.itemsize <= 0:
            raise ValueError(f"machine profile: itemsize must be a positive integer, got {self.itemsize!r}")

    def _check_table(self, dims_name: str, value_names: tuple[str, ...]) -> None:
        """``dims_name``: rising positive integers; each of ``value_names``: one positive number per entry."""
        dims = getattr(self, dims_name)
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else ()
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims):
            raise ValueError(
                f"machine profile: {dims_name} must be rising positive integers, got {getattr(self, dims_name)!r}"
            )
        if list(dims) != sorted(set(dims)):
            raise ValueError(f"machine profile: {dims_name} must be rising positive integers, got {dims}")
        object.__setattr__(self, dims_name, dims)
        for name in value_names:
            values = getattr(self, name)
            values = tuple(values) if isinstance(values, (list, tuple)) else ()
            if len(values) != len(dims):
                raise ValueError(
                    f"machine profile: {name} needs one rate per dimension of {dims_name} {dims}, "
                    f"got {getattr(self, name)!r}"
                )
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf for v in values):
                raise ValueError(f"machine profile: {name} must be positive finite numbers, got {values}")
            object.__setattr__(self, name, tuple(float(v) for v in values))

    def family_factor(self, family: str, direction: str, seeds):
        """The JVP (``direction="tangent"``) or VJP time per FMA of one family of operations
        (:data:`~chainorder.core.layer.OP_FAMILIES`) over a dense layer's, at ``seeds`` (scalar or array).

        >>> profile = MachineProfile("cpu", "x", (1,), (1e9,), 1e9, 0.0, conv_dims=(16, 256),
        ...                          conv_tangent_factors=(3.0, 5.0), conv_adjoint_factors=(2.0, 2.0))
        >>> float(profile.family_factor("conv", "tangent", 64)), float(profile.family_factor("conv", "adjoint", 1024))
        (4.0, 2.0)
        """
        factors = getattr(self, f"{family}_{direction}_factors")
        with np.errstate(invalid="ignore"):
            return np.interp(np.log(seeds), np.log(getattr(self, f"{family}_dims")), factors)

    def with_family_factor(self, family: str, factor: float) -> MachineProfile:
        """This profile with one factor for ``family``, both directions, at every seed count (1:
        the family priced as dense layers).

        >>> float(DEFAULT_PROFILES["cpu"].with_family_factor("conv", 3.0).family_factor("conv", "adjoint", 64))
        3.0
        """
        one = {f"{family}_{direction}_factors": (factor,) for direction in ("tangent", "adjoint")}
        return dataclasses.replace(self, **{f"{family}_dims": (1,)}, **one)

    def write_factor(self, nbytes):
        """Time per byte of writing a fresh block of ``nbytes`` (scalar or array) over ``bandwidth``'s:
        the factor of the largest ``write_sizes`` entry at most ``nbytes``, 1 below the first.

        >>> profile = MachineProfile("cpu", "x", (1,), (1e9,), 1e9, 0.0, write_sizes=(2**25,), write_factors=(20.0,))
        >>> [float(profile.write_factor(size)) for size in (2**25 - 4, 2**25, 2**30)]
        [1.0, 20.0, 20.0]
        """
        factors = np.concatenate([[1.0], self.write_factors])
        return factors[np.searchsorted(self.write_sizes, nbytes, side="right")]

    def mode_factor(self, direction: str, seeds):
        """JVP (``direction="tangent"``) or VJP time per FMA over a GEMM's, at ``seeds`` (scalar or array)."""
        factors = self.tangent_factors if direction == "tangent" else self.adjoint_factors
        with np.errstate(invalid="ignore"):
            return np.interp(np.log(seeds), np.log(self.mode_dims), factors)

    @property
    def gemm_peak(self) -> float:
        """The best measured GEMM rate (FMAs per second)."""
        return max(self.gemm_rates)

    def gemm_rate(self, smallest):
        """FMAs per second of a product whose smallest dimension is ``smallest`` (scalar or array).

        The measured rates are taken non-decreasing (a running maximum): timing noise must
        not make a thicker product slower, and the time DP relies on it."""
        rates = np.maximum.accumulate(self.gemm_rates)
        with np.errstate(invalid="ignore"):  # inf dims (costs past float64) give inf, not a warning
            return np.interp(np.log(smallest), np.log(self.gemm_dims), rates)

    def to_dict(self) -> dict[str, Any]:
        return {"version": PROFILE_VERSION, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        """The profile as JSON text; see :meth:`from_json`."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> MachineProfile:
        """Read a profile written by :meth:`to_json`.

        Raises
        ------
        ValueError
            If the text is not such a profile (what is wrong is named).
        """
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"machine profile JSON is malformed: {error}") from None
        if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
            raise ValueError(f"machine profile JSON must be an object with version {PROFILE_VERSION}")
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"version"})
        if unknown:
            raise ValueError(f"machine profile JSON has unknown fields {unknown}")
        try:
            return cls(**{key: value for key, value in data.items() if key != "version"})
        except (TypeError, ValueError) as error:
            raise ValueError(f"machine profile JSON: {error}") from None


_DIMS = (1, 4, 16, 64, 256, 1024)
#: Analytic rooflines, used when no measured profile exists: a 2-core AVX2 CPU
#: (up to about 160 GFMA/s in float32, 18 at matrix-vector shapes; 40 GB/s) and
#: an H100-class GPU (about 25 TFMA/s in float32 without tensor cores, 2 TB/s).
#: On the CPU, a result block of 32 MiB or more is written at a tenth of the bandwidth
#: (fresh pages from the allocator). Stated, not measured.
DEFAULT_PROFILES = {
    "cpu": MachineProfile(
        "cpu", "cpu", _DIMS, (1.8e10, 3.5e10, 6.5e10, 1.0e11, 1.2e11, 1.6e11), 4.0e10, 1.0e-6, 1.0e-6, 1.0e-6,
        primal_overhead=1.0e-6, write_sizes=(2**25,), write_factors=(10.0,),
    ),
    "gpu": MachineProfile(
        "gpu", "gpu", _DIMS, (1.0e11, 4.0e11, 1.6e12, 6.0e12, 1.8e13, 2.5e13), 2.0e12, 5.0e-6, 5.0e-6, 5.0e-6,
        primal_overhead=5.0e-6,
    ),
    "tpu": MachineProfile(
        "tpu", "tpu", _DIMS, (1.0e11, 4.0e11, 1.6e12, 6.0e12, 2.5e13, 5.0e13), 1.0e12, 5.0e-6, 5.0e-6, 5.0e-6,
        primal_overhead=5.0e-6,
    ),
}


def default_profile(platform: str = "cpu") -> MachineProfile:
    """The analytic default for ``platform`` (the CPU's for one it does not know).

    >>> default_profile("gpu").platform, default_profile("weird").platform
    ('gpu', 'cpu')
    """
    return DEFAULT_PROFILES.get(platform, DEFAULT_PROFILES["cpu"])
