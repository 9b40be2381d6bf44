"""Seeds sharded over devices: one block per device, the result sharded, equal to jax.jacobian.

The tests with several devices run in a subprocess started with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (the device count is fixed when JAX starts).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder
from chainorder import Chain, optimize

SCRIPT = textwrap.dedent(
    """
    import functools
    import jax, jax.numpy as jnp, numpy as np
    import chainorder
    from chainorder import Chain, optimize
    from jax.sharding import Mesh
    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) == 4
    rng = np.random.default_rng(0)

    def mlp(widths):
        weights = [jnp.asarray(rng.standard_normal((b, a)) / np.sqrt(a)) for a, b in zip(widths, widths[1:])]
        def f(v):
            for w in weights:
                v = jnp.tanh(w @ v)
            return v
        return f, jnp.linspace(-1.0, 1.0, widths[0])

    for widths in ([200, 16, 300], [301, 8, 30], [30, 8, 301]):  # 301: the last block is padded
        f, x = mlp(widths)
        expected = jax.jacobian(f)(x)
        sharded = chainorder.jacobian(f, devices=jax.devices())
        for compute in (sharded, jax.jit(sharded)):
            J = compute(x)
            assert float(jnp.abs(J - expected).max()) < 1e-12, widths
            assert len(J.sharding.device_set) == 4
            if 301 not in widths:  # an axis the 4 devices divide stays sharded
                assert "seeds" in tuple(J.sharding.spec), (widths, J.sharding)
    mesh = Mesh(np.array(jax.devices()[:2]), ("d",))
    f, x = mlp([64, 4, 64])
    J = chainorder.jacobian(f, devices=mesh, objective="fma")(x)
    assert float(jnp.abs(J - jax.jacobian(f)(x)).max()) < 1e-12 and len(J.sharding.device_set) == 2
    plan = optimize(Chain.from_functions([f], x))
    J = plan.jacobian(x, devices=jax.devices())
    assert float(jnp.abs(J - jax.jacobian(f)(x)).max()) < 1e-12 and len(J.sharding.device_set) == 4

    # a plan scheduled on 3 threads: each step on its device
    from chainorder.front.zoo import dense_chain
    functions, x = dense_chain([300, 120, 12, 120, 16, 140, 300], 3, jnp.float64)
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain, threads=3)
    assert len({slot.device for slot in plan.schedule}) == 3, plan.schedule
    composed = lambda v: functools.reduce(lambda a, g: g(a), functions, v)
    expected = jax.jacobian(composed)(x)
    for devices in (jax.devices(), Mesh(np.array(jax.devices()[1:]), ("d",))):
        J = plan.jacobian(x, devices=devices)
        assert float(jnp.abs(J - expected).max()) < 1e-10
        listed = list(devices.devices.flat) if isinstance(devices, Mesh) else devices
        assert J.devices() == {listed[plan.schedule[-1].device]}
    print("ok")
    """
)


@pytest.mark.slow
def test_four_devices_in_a_subprocess():
    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_one_device_and_bad_devices():
    w = jnp.asarray(np.random.default_rng(1).standard_normal((5, 40)))
    f = lambda v: jnp.sin(w.T @ jnp.tanh(w @ v))  # noqa: E731
    x = jnp.linspace(-1.0, 1.0, 40)
    J = chainorder.jacobian(f, devices=jax.devices()[:1])(x)
    np.testing.assert_allclose(np.asarray(J), np.asarray(jax.jacobian(f)(x)), atol=1e-12)
    with pytest.raises(ValueError, match="non-empty list of jax devices"):
        chainorder.jacobian(f, devices=[])
    with pytest.raises(TypeError, match="list of jax devices or a jax.sharding.Mesh"):
        chainorder.jacobian(f, devices="cpu")
    with pytest.raises(TypeError, match="argnums an int"):
        chainorder.jacobian(f, argnums=(0,), devices=jax.devices())
    with pytest.raises(TypeError, match="out= or devices=, not both"):
        optimize(Chain.from_functions([f], x)).jacobian(x, out=np.zeros((40, 40)), devices=jax.devices())


WORKER = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2, process_id=int(sys.argv[1]))
    import jax.numpy as jnp, numpy as np
    import chainorder
    from jax.experimental import multihost_utils
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)
    weights = [jnp.asarray(rng.standard_normal(s) / np.sqrt(s[1])) for s in [(16, 200), (300, 16)]]
    def f(v):
        for w in weights:
            v = jnp.tanh(w @ v)
        return v
    x = jnp.linspace(-1.0, 1.0, 200)
    assert len(jax.devices()) == 2 and len(jax.local_devices()) == 1
    J = chainorder.jacobian(f, devices=jax.devices())(x)
    assert len(J.sharding.device_set) == 2 and not J.is_fully_addressable
    gathered = np.asarray(multihost_utils.process_allgather(J, tiled=True))
    error = float(np.abs(gathered - np.asarray(jax.jacobian(f)(x))).max())
    assert gathered.shape == (300, 200) and error < 1e-12, error
    print("ok", sys.argv[1])
    """
)


@pytest.mark.slow
def test_two_processes_joined_by_jax_distributed():
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        address = f"localhost:{probe.getsockname()[1]}"
    environment = {**os.environ, "JAX_PLATFORMS": "cpu"}
    environment.pop("XLA_FLAGS", None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), address],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for rank, (worker, (out, err)) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, err[-3000:]
        assert out.strip().endswith(f"ok {rank}")


def test_scheduled_plan_on_one_device_and_too_few_devices():
    from chainorder.front.zoo import dense_chain

    functions, x = dense_chain([200, 100, 10, 100, 200], 0, jnp.float64)
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain, threads=2)
    expected = jax.jacobian(lambda v: functools.reduce(lambda a, g: g(a), functions, v))(x)
    np.testing.assert_allclose(np.asarray(plan.jacobian(x)), np.asarray(expected), atol=1e-10)
    with pytest.raises(ValueError, match="scheduled on 2 threads but 1 devices were given"):
        plan.jacobian(x, devices=jax.devices()[:1])
    single = optimize(chain, threads=1)
    J = single.jacobian(x, devices=jax.devices())
    np.testing.assert_allclose(np.asarray(J), np.asarray(expected), atol=1e-10)

