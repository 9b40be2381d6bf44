"""Plain JAX models whose chain comes from tracing (:func:`chainorder.trace`), not from a list of layers.

Used by ``benchmarks/bench_trace.py`` (jacobian against jacfwd/jacrev) and
``benchmarks/bench_fidelity.py`` (the time model on traced chains). Each model
is a function of one array with its parameters closed over, as a user writes it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .zoo import DenseLayer, composed

__all__ = ["TRACED", "conv_autoencoder", "layer_norm_mlp", "mlp_function", "mlp_layers", "traced_models"]


def _dense(rng: np.random.Generator, rows: int, columns: int, dtype) -> tuple[jax.Array, jax.Array]:
    """A ``rows x columns`` weight scaled by ``1/sqrt(columns)`` and a small bias."""
    weight = jnp.asarray(rng.standard_normal((rows, columns)) / np.sqrt(columns), dtype)
    return weight, jnp.asarray(0.1 * rng.standard_normal(rows), dtype)


def mlp_layers(dims: list[int], seed: int = 0, dtype=jnp.float32) -> tuple[list[DenseLayer], jax.Array]:
    """``tanh(W x + b)`` layers of widths ``dims``, the last one affine; and an input."""
    rng = np.random.default_rng(seed)
    params = [_dense(rng, dims[i + 1], dims[i], dtype) for i in range(len(dims) - 1)]
    layers = [DenseLayer(weight, bias, "tanh") for weight, bias in params[:-1]]
    layers.append(DenseLayer(*params[-1], "identity"))
    return layers, jnp.asarray(rng.standard_normal(dims[0]), dtype)


def mlp_function(dims: list[int], seed: int = 0, dtype=jnp.float32) -> tuple[Callable, jax.Array]:
    """The layers of :func:`mlp_layers` as one function, and the input."""
    layers, x = mlp_layers(dims, seed, dtype)
    return composed(layers), x


def conv_autoencoder(side: int = 32, code: int = 16, seed: int = 0, dtype=jnp.float32) -> tuple[Callable, jax.Array]:
    """A ``1 x side x side`` image through two 3x3 convolutions (8 channels, then 16 at stride 2),
    a dense code of ``code`` units and a dense decoder back to ``side * side`` pixels."""
    rng = np.random.default_rng(seed)
    first = jnp.asarray(rng.standard_normal((8, 1, 3, 3)) / 3, dtype)
    second = jnp.asarray(rng.standard_normal((16, 8, 3, 3)) / np.sqrt(72), dtype)
    encoder = _dense(rng, code, 16 * (side // 2) ** 2, dtype)
    decoder = _dense(rng, side * side, code, dtype)

    def f(image):
        h = jnp.tanh(jax.lax.conv_general_dilated(image[None], first, (1, 1), "SAME"))
        h = jnp.tanh(jax.lax.conv_general_dilated(h, second, (2, 2), "SAME"))
        z = jnp.tanh(encoder[0] @ h.reshape(-1) + encoder[1])
        return decoder[0] @ z + decoder[1]

    return f, jnp.asarray(rng.standard_normal((1, side, side)), dtype)


def layer_norm_mlp(dims: list[int], seed: int = 0, dtype=jnp.float32) -> tuple[Callable, jax.Array]:
    """Like :func:`mlp_function`, with a layer norm after every hidden layer (a reduction over
    the layer's units, so its Jacobian is dense, not diagonal)."""
    rng = np.random.default_rng(seed)
    params = [_dense(rng, dims[i + 1], dims[i], dtype) for i in range(len(dims) - 1)]

    def f(x):
        for weight, bias in params[:-1]:
            x = jnp.tanh(weight @ x + bias)
            x = (x - x.mean()) / jnp.sqrt(x.var() + 1e-5)
        weight, bias = params[-1]
        return weight @ x + bias

    return f, jnp.asarray(rng.standard_normal(dims[0]), dtype)


TRACED: dict[str, Callable[..., tuple[Callable, jax.Array]]] = {
    "traced MLP 1024-512-16-512-1024": lambda dtype: mlp_function([1024, 512, 16, 512, 1024], dtype=dtype),
    "traced conv autoencoder 32x32": lambda dtype: conv_autoencoder(dtype=dtype),
    "traced layer-norm MLP 256-1024-32-1024-256": lambda dtype: layer_norm_mlp([256, 1024, 32, 1024, 256], dtype=dtype),
}


def traced_models(only: str | None = None, dtype=jnp.float32) -> list[tuple[str, Callable, jax.Array]]:
    """``(name, f, x)`` of the traced models whose name contains ``only``, in ``dtype``.

    >>> [(name, x.shape) for name, f, x in traced_models("conv")]
    [('traced conv autoencoder 32x32', (1, 32, 32))]
    """
    return [(name, *make(dtype)) for name, make in TRACED.items() if not only or only in name]
