"""Memory budgets as people state them: elements, bytes as text with the dtype, 'auto'."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder
from chainorder import Chain, optimize
from chainorder.core.budget import budget_elements, itemsize_of

CHAIN = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])


@pytest.mark.parametrize(
    "text, dtype, elements",
    [
        ("512MB", "float32", 128_000_000),
        ("2GiB", "float64", 2**31 // 8),
        ("1.5 gb", "float32", 375_000_000),
        ("600kB", "float32", 150_000),
        ("300000B", "bfloat16", 150_000),
        (" 1 KiB ", np.float16, 512),
        (150_000, "float64", 150_000),
        (np.int32(7), "float32", 7),
    ],
)
def test_budgets_parse(text, dtype, elements):
    assert budget_elements(text, dtype) == elements


@pytest.mark.parametrize(
    "limit, error, message",
    [
        ("12 parsecs", ValueError, "does not parse.*'512MB'"),
        ("MB", ValueError, "does not parse"),
        ("-5MB", ValueError, "does not parse"),
        ("1e3MB", ValueError, "does not parse"),
        ("3B", ValueError, "less than one 4-byte element"),
        ("auto", ValueError, "optimize\\(\\) does not know the device"),
        (0, ValueError, "positive number of elements, got 0"),
        (2.5, TypeError, "integer number of elements or bytes as text"),
        (True, TypeError, "integer number of elements"),
    ],
)
def test_bad_budgets_say_what_is_wrong(limit, error, message):
    with pytest.raises(error, match=message):
        optimize(CHAIN, memory_limit=limit)


def test_a_budget_in_bytes_chooses_the_same_plan_as_in_elements():
    by_bytes = optimize(CHAIN, memory_limit="600kB", dtype="float32")
    assert by_bytes == optimize(CHAIN, memory_limit=150_000) and by_bytes.memory_limit == 150_000
    assert optimize(CHAIN, memory_limit="1.2MB", dtype="float64").memory_limit == 150_000
    assert itemsize_of(jnp.bfloat16) == 2 and itemsize_of(jnp.float32) == 4
    with pytest.raises(TypeError, match="dtype must be"):
        optimize(CHAIN, memory_limit="1MB", dtype="nonsense")


def test_jacobian_takes_budgets_in_bytes_and_auto():
    w1, w2 = jnp.ones((16, 512)) / 512, jnp.ones((512, 16)) / 16
    f = lambda v: w2 @ jnp.sin(w1 @ v)  # noqa: E731
    x = jnp.linspace(-1.0, 1.0, 512)  # float64 in the tests: 8 bytes an element
    expected = jax.jacobian(f)(x)
    limited = chainorder.jacobian(f, memory_limit="3MB")
    assert jnp.allclose(limited(x), expected, atol=1e-12)
    (plan,) = limited.plans.values()
    assert plan.memory_limit == 375_000 and plan.peak_memory <= 375_000
    auto = chainorder.jacobian(f, memory_limit="auto")
    assert jnp.allclose(auto(x), expected, atol=1e-12)
    assert chainorder.analyze(f, x, memory_limit="3MB").plan.memory_limit == 375_000
    with pytest.raises(ValueError, match="Jacobian alone is 262,144 elements .* over memory_limit 1,000"):
        chainorder.jacobian(f, memory_limit="8KB")(x)


def test_cli_budgets(capsys):
    from chainorder.front.cli import main

    dims = ["analyze", "--dims", "64,512,1024,128,16,512,256,8"]
    assert main([*dims, "--memory-limit", "1.2MB", "--dtype", "float64"]) == 0
    assert "memory limit 150,000" in capsys.readouterr().out
    assert main([*dims, "--memory-limit", "600 parsecs"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "memory_limit '600 parsecs' does not parse" in line
