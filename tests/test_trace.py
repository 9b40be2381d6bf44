"""chainorder.trace / analyze / jacobian on real JAX functions, against jax.jacobian (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder


def _close(a, b, rtol=1e-10):
    scale = max(float(jnp.max(jnp.abs(b))), 1e-300)
    return float(jnp.max(jnp.abs(a - b))) / scale < rtol


def _tree_close(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        assert x.shape == y.shape and x.dtype == y.dtype
        assert _close(x, y)


def mlp_params(dims, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            jnp.asarray(rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])),
            jnp.asarray(rng.standard_normal(dims[i + 1]) * 0.1),
        )
        for i in range(len(dims) - 1)
    ]


def mlp(params, x):
    for weight, bias in params[:-1]:
        x = jnp.tanh(weight @ x + bias)
    weight, bias = params[-1]
    return weight @ x + bias


@pytest.mark.parametrize("dims", [[30, 50, 20], [64, 8, 64], [200, 100, 50, 10], [256, 128, 8, 128, 256]])
def test_mlps(dims):
    params = mlp_params(dims)
    x = jnp.linspace(-1, 1, dims[0])
    f = lambda v: mlp(params, v)  # noqa: E731
    chain = chainorder.trace(f, x)
    assert chain.dims == tuple(dims)  # one layer per dense layer
    _tree_close(chainorder.jacobian(f)(x), jax.jacobian(f)(x))
    report = chainorder.analyze(f, x)
    assert all(layer.explicit for layer in chain)  # each is affine, then elementwise (or nothing)
    # the drop-in takes the explicit forms where they make the plan 1.25x cheaper than without
    structured, dense = chainorder.optimize(chain), chainorder.optimize(chain.without_structure())
    assert report.plan.cost == (structured if structured.cost * 1.25 < dense.cost else dense).cost


def test_autoencoder_plan_is_mixed_and_printed():
    params = mlp_params([256, 128, 8, 128, 256])
    f = lambda v: mlp(params, v)  # noqa: E731
    report = chainorder.analyze(f, jnp.ones(256) / 16)
    assert report.plan.mode == "mixed" and report.plan.speedup > 10
    text = str(report)
    assert "4 segments" in text and "dot_general, add, tanh" in text
    assert "test_trace.py" in text  # where in f each segment comes from
    assert str(report.plan) in text


def test_residual_mlp_cuts_after_the_merge():
    (w1, _), (w2, _) = mlp_params([48, 48, 48])

    def f(x):
        for _ in range(3):
            x = x + w2 @ jnp.tanh(w1 @ x)
        return jnp.sin(x)

    x = jnp.linspace(-1, 1, 48)
    chain = chainorder.trace(f, x)
    assert len(chain) >= 3 and set(chain.dims) == {48}  # no cut inside a block (state 96 there)
    _tree_close(chainorder.jacobian(f)(x), jax.jacobian(f)(x))


def test_a_step_runs_its_segments_joined():
    """A step through several segments runs them as the program does: the states between them (a
    layer norm's activations with their mean, then with their variance) are not packed into vectors."""
    from chainorder.core.profile import default_profile
    from chainorder.front import tracedzoo

    f, x = tracedzoo.layer_norm_mlp([16, 40, 6, 40, 16], dtype=jnp.float64)
    chain = chainorder.trace(f, x)
    assert 41 in chain.dims and 80 in chain.dims  # the packed states inside the layer norms
    expected = jax.jacobian(f)(x)
    plans = [chainorder.optimize(chain, mode) for mode in ("forward", "reverse")]
    plans.append(chainorder.optimize(chain, objective="time", profile=default_profile()))
    boundaries = {chain.dims[index] for step in plans[-1].steps for index in (step.first, step.last + 1)}
    assert plans[-1].mode == "mixed" and boundaries <= {16, 40, 6}  # its steps begin and end between layers
    for plan in plans:
        compiled = jax.jit(plan.jacobian).lower(x).compile().as_text()
        assert " concatenate(" not in compiled, plan
        _tree_close(plan.jacobian(x), expected)


def test_small_cnn():
    rng = np.random.default_rng(1)
    k1 = jnp.asarray(rng.standard_normal((4, 1, 3, 3)) / 3)
    k2 = jnp.asarray(rng.standard_normal((2, 4, 3, 3)) / 6)
    dense = jnp.asarray(rng.standard_normal((5, 2 * 4 * 4)) / 6)

    def cnn(image):
        h = jax.nn.relu(jax.lax.conv_general_dilated(image[None], k1, (1, 1), "VALID"))
        h = jnp.tanh(jax.lax.conv_general_dilated(h, k2, (1, 1), "VALID"))
        return dense @ h.reshape(-1)

    image = jnp.asarray(rng.standard_normal((1, 8, 8)))
    chain = chainorder.trace(cnn, image)
    # three segments; the two convolutions' (relu's pattern read from its rule) join into one sparse layer
    assert len(chain) == 2 and chain.dims == (64, 32, 5) and list(chain)[0].pattern is not None
    assert any(layer.tangent_cost >= 4 * 36 * 9 for layer in chain)  # the first convolution's multiply-adds
    _tree_close(chainorder.jacobian(cnn)(image), jax.jacobian(cnn)(image))


def test_nested_jit_and_custom_jvp_are_split():
    params = mlp_params([40, 20, 4, 20])
    layer = jax.jit(lambda w, b, v: jax.nn.relu(w @ v + b))

    @jax.jit
    def f(x):
        for w, b in params:
            x = layer(w, b, x)
        return x

    x = jnp.linspace(-1, 1, 40)
    chain = chainorder.trace(f, x)
    assert chain.dims == (40, 20, 4, 20)
    _tree_close(chainorder.jacobian(f)(x), jax.jacobian(f)(x))


def test_fori_loop_is_one_segment():
    (w, _), = mlp_params([16, 16])

    def f(x):
        y = jnp.tanh(jnp.ones((40, 16)) @ x)
        return jax.lax.fori_loop(0, 4, lambda i, c: jnp.sin(w @ c), y[:16]) * 2.0

    x = jnp.linspace(-1, 1, 16)
    report = chainorder.analyze(f, x)
    assert any("scan" in segment.primitives or "while" in segment.primitives for segment in report.segments)
    _tree_close(chainorder.jacobian(f)(x), jax.jacobian(f)(x))


def test_pytree_input_and_output():
    params = mlp_params([6, 5, 3])

    def f(inputs):
        h = mlp(params, inputs["x"] * inputs["scale"][0])
        return {"out": h, "norm": jnp.sum(h**2), "pair": (h[:2], jnp.tanh(inputs["scale"]))}

    inputs = {"x": jnp.linspace(-1, 1, 6), "scale": jnp.array([0.5, 2.0])}
    _tree_close(chainorder.jacobian(f)(inputs), jax.jacobian(f)(inputs))


def test_argnums():
    params = mlp_params([10, 7, 3])
    x = jnp.linspace(-1, 1, 10)
    _tree_close(chainorder.jacobian(mlp, argnums=1)(params, x), jax.jacobian(mlp, argnums=1)(params, x))
    _tree_close(chainorder.jacobian(mlp, argnums=0)(params, x), jax.jacobian(mlp, argnums=0)(params, x))
    _tree_close(chainorder.jacobian(mlp, argnums=(0, 1))(params, x), jax.jacobian(mlp, argnums=(0, 1))(params, x))


def test_scalar_arguments_held_constant_and_fallback_under_jit():
    def f(x, scale, offset):
        return jnp.tanh(scale * x + offset)

    x = jnp.linspace(-1, 1, 7)
    _tree_close(chainorder.jacobian(f)(x, 2.0, 0.5), jax.jacobian(f)(x, 2.0, 0.5))
    _tree_close(chainorder.jacobian(f, argnums=1)(x, 2.0, 0.5), jax.jacobian(f, argnums=1)(x, 2.0, 0.5))

    def noisy(x):
        jax.debug.callback(lambda v: None, x)
        return jnp.sin(x)

    _tree_close(jax.jit(chainorder.jacobian(noisy))(x), jax.jacobian(noisy)(x))


def test_jit_vmap_and_caching():
    params = mlp_params([32, 4, 32])
    f = lambda v: mlp(params, v)  # noqa: E731
    jac = chainorder.jacobian(f)
    xs = jnp.stack([jnp.linspace(-1, 1, 32), jnp.linspace(0, 2, 32)])
    _tree_close(jax.vmap(jac)(xs), jax.vmap(jax.jacobian(f))(xs))
    _tree_close(jax.jit(jac)(xs[0]), jax.jacobian(f)(xs[0]))
    jac(xs[1])
    assert len(jac.plans) == 1  # one analysis per input signature
    jac(jnp.linspace(-1, 1, 32).astype(jnp.float32))
    assert len(jac.plans) == 2


def test_parameters_change_between_calls():
    # the plan is cached per signature, but the values held constant are read at each call
    x = jnp.linspace(-1, 1, 12)
    jac = chainorder.jacobian(mlp, argnums=1)
    for seed in (0, 1):
        params = mlp_params([12, 3, 12], seed)
        _tree_close(jac(params, x), jax.jacobian(mlp, argnums=1)(params, x))


def test_equinox_model():
    eqx = pytest.importorskip("equinox")
    model = eqx.nn.MLP(in_size=24, out_size=24, width_size=4, depth=3, activation=jnp.tanh, key=jax.random.PRNGKey(0))
    model = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)
    x = jnp.linspace(-1, 1, 24)
    chain = chainorder.trace(model, x)
    assert chain.dims == (24, 4, 4, 4, 24)  # one layer per linear layer, equal widths or not
    assert chainorder.analyze(model, x, objective="fma").plan.mode == "mixed"
    _tree_close(chainorder.jacobian(model)(x), jax.jacobian(model)(x))


def test_unsplittable_function_falls_back_to_one_segment():
    def f(x):
        jax.debug.callback(lambda v: None, x)  # an effect: the program is not cut
        return jnp.sin(x) * 3

    x = jnp.linspace(0, 1, 5)
    report = chainorder.analyze(f, x)
    assert len(report.segments) == 1 and "not split" in report.notes[0]
    assert "not split" in str(report)
    _tree_close(chainorder.jacobian(f)(x), jax.jacobian(f)(x))


def test_errors_like_jax():
    # jax.jacobian's own errors (issue 10: the drop-in raises what jax.jacobian raises)
    with pytest.raises(TypeError, match="is not a valid JAX type"):
        chainorder.jacobian(lambda x: "text")(jnp.ones(3))
    with pytest.raises(TypeError, match="real- or complex-valued inputs"):
        chainorder.jacobian(jnp.sin)(jnp.ones(3, dtype=jnp.int32))
    with pytest.raises(ValueError, match=r"greater than or equal to -len\(args\) and less than len\(args\)"):
        chainorder.jacobian(jnp.sin, argnums=2)(jnp.ones(3))
    with pytest.raises(TypeError, match="Expected a callable value, got 3"):
        chainorder.jacobian(3)


def test_a_while_loop_jax_cannot_reverse_is_pushed_forward():
    (w, _), = mlp_params([20, 20])

    def f(x):
        y = jnp.tanh(w @ x)
        return jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (jnp.sin(c[0]), c[1] + 1), (y, 0))[0]

    x = jnp.linspace(-1, 1, 20)
    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
        jax.jacobian(f)(x)  # jax.jacobian is reverse mode
    report = chainorder.analyze(f, x)
    assert any("cannot run in reverse mode" in note for note in report.notes)
    assert all(step.kind.startswith("tangent") for step in report.plan.steps)
    _tree_close(chainorder.jacobian(f)(x), jax.jacfwd(f)(x))


@pytest.mark.parametrize("model", ["mlp", "conv", "layer norm"])
def test_traced_zoo_models_against_jax(model):
    """The fidelity benchmark's traced models (smaller): a time-optimal and a random plan give jax.jacobian's."""
    from chainorder.core.profile import default_profile
    from chainorder.front import tracedzoo

    f, x = {
        "mlp": lambda: tracedzoo.mlp_function([48, 24, 4, 24, 48], dtype=jnp.float64),
        "conv": lambda: tracedzoo.conv_autoencoder(side=8, code=4, dtype=jnp.float64),
        "layer norm": lambda: tracedzoo.layer_norm_mlp([16, 40, 6, 40, 16], dtype=jnp.float64),
    }[model]()
    chain = chainorder.trace(f, x)
    expected = jax.jacobian(f)(x).reshape(chain.out_dim, chain.in_dim)
    assert chain.dims[0] == x.size and len(chain) >= 3
    # the conv model's 3x3 convolutions: 8 channels from 1 on 8x8 pixels, 16 from 8 on 4x4; none elsewhere
    assert sum(layer.conv_cost for layer in chain) == (8 * 8 * 8 * 9 + 16 * 4 * 4 * 8 * 9 if model == "conv" else 0)
    # a layer norm of k units reduces 3k elements: its mean, the mean of the squares' deviations
    # (jnp.var: a mean of x, then of the squares); the norms' widths are 40, 6 and 40
    assert sum(layer.reduction_cost for layer in chain) == (3 * (40 + 6 + 40) if model == "layer norm" else 0)
    plans = (
        chainorder.optimize(chain, objective="time", profile=default_profile()),
        chainorder.random_plan(chain, seed=1),
    )
    for plan in plans:
        assert _close(jax.jit(plan.jacobian)(x).reshape(expected.shape), expected)
