"""The jaxpr counting rules behind Chain.from_functions, on layers whose cost is known."""

import jax
import jax.numpy as jnp
import numpy as np

from chainorder import Chain
from chainorder.backend.opcount import count_fmas, layer_costs


def test_dense_linear_layer_costs_in_times_out():
    weight = jnp.ones((7, 5))
    assert layer_costs(lambda v: weight @ v, jnp.ones(5)) == (35, 35, 0)


def test_dense_tanh_adds_a_few_ops_per_output():
    weight = jnp.ones((7, 5))
    tangent, adjoint, tape = layer_costs(lambda v: jnp.tanh(weight @ v), jnp.ones(5))
    assert 7 <= tape <= 14
    assert 35 + 7 <= tangent <= 35 + 4 * 7
    assert 35 + 7 <= adjoint <= 35 + 4 * 7


def test_elementwise_costs_per_element():
    assert layer_costs(jnp.sin, jnp.ones(100)) == (100, 100, 100)


def test_reshape_and_transpose_are_free():
    assert layer_costs(lambda v: jnp.reshape(v, (4, 5)).T, jnp.ones(20)) == (0, 0, 0)


def test_matrix_product_batch():
    weight = jnp.ones((3, 4))
    # (3x4) @ (4x6): 72 multiply-adds
    assert count_fmas(jax.make_jaxpr(lambda m: weight @ m)(jnp.ones((4, 6)))) == 72


def test_convolution():
    kernel = jnp.ones((8, 3, 3, 3))  # out, in, h, w

    def conv(image):
        return jax.lax.conv_general_dilated(image, kernel, (1, 1), "VALID")

    image = jnp.ones((1, 3, 10, 10))
    # output 1x8x8x8 = 512 entries, each 3*3*3 = 27 multiply-adds
    assert count_fmas(jax.make_jaxpr(conv)(image)) == 512 * 27
    assert layer_costs(conv, image)[0] == 512 * 27


def test_scan_counts_length_times_body():
    weight = jnp.ones((4, 4))

    def loop(v):
        return jax.lax.fori_loop(0, 5, lambda i, c: weight @ c, v)

    assert count_fmas(jax.make_jaxpr(loop)(jnp.ones(4))) >= 5 * 16


def test_nested_jit_is_counted():
    weight = jnp.ones((6, 2))
    inner = jax.jit(lambda v: weight @ v)
    assert count_fmas(jax.make_jaxpr(lambda v: inner(v))(jnp.ones(2))) == 12


def test_from_functions_dims_and_shapes():
    rng = np.random.default_rng(0)
    weight = jnp.asarray(rng.standard_normal((6, 12)))
    chain = Chain.from_functions([lambda m: jnp.reshape(m, (-1,)), lambda v: weight @ v, jnp.tanh], jnp.ones((3, 4)))
    assert chain.dims == (12, 12, 6, 6)
    assert chain[0].in_shape == (3, 4) and chain[0].out_shape == (12,)
    assert chain.tangent_costs[1] == 72
