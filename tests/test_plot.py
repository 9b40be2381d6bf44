"""Both figures render to PNG under Agg, and draw what they say they draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import chainorder  # noqa: E402
from chainorder import Chain, optimize, pareto  # noqa: E402

CHAIN = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])


def _texts(ax):
    return [text.get_text() for text in ax.texts]


def test_tradeoff_plot(tmp_path):
    front = pareto(CHAIN)
    chosen = optimize(CHAIN, memory_limit=front[1].peak_memory)
    fig, ax = chainorder.plot_tradeoff(CHAIN, chosen=chosen, samples=50)
    path = tmp_path / "tradeoff.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "memory" in ax.get_xlabel() and "FMAs" in ax.get_ylabel()
    assert set(_texts(ax)) == {"forward (jacfwd)", "reverse (jacrev)", "FMA-optimal", "chosen"}
    collections = ax.collections
    assert len(collections[0].get_offsets()) == 50  # the random sample
    front_points = collections[1].get_offsets()
    assert [(x, y) for x, y in front_points] == [(p.peak_memory, p.cost) for p in front]
    step_line = ax.lines[0]
    assert list(step_line.get_xdata()) == [p.peak_memory for p in front]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["other plans (50 random bracketings)", f"Pareto front ({len(front)} plans)"]
    plt.close(fig)


def test_tradeoff_into_given_axes_from_a_front():
    fig, axes = plt.subplots(1, 2)
    returned_fig, ax = chainorder.plot_tradeoff(pareto(CHAIN), ax=axes[1], samples=10)
    assert returned_fig is fig and ax is axes[1]
    assert not axes[0].collections
    plt.close(fig)
    with pytest.raises(TypeError, match="non-empty list of Plans"):
        chainorder.plot_tradeoff([])


@pytest.mark.parametrize("dims", [[10, 2, 10, 3], [64, 512, 1024, 128, 16, 512, 256, 8], list(range(60, 9, -1))])
def test_plan_plot(tmp_path, dims):
    chain = Chain.from_dims(dims)
    plan = optimize(chain, matrix_free=len(dims) > 4)
    fig, ax = chainorder.plot_plan(plan)
    path = tmp_path / "plan.png"
    fig.savefig(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert len(ax.patches) == len(plan.steps)  # one bar per step
    for bar, step in zip(ax.patches, plan.steps):
        assert bar.get_x() == step.first and bar.get_width() == step.last - step.first + 1
    costs = [text for text in _texts(ax)]
    assert len(costs) == len(plan.steps)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "dense product" in legend and "adjoint step (VJPs)" in legend
    plt.close(fig)


def test_plot_plan_rejects_non_plans():
    with pytest.raises(TypeError, match="plot_plan needs a Plan"):
        chainorder.plot_plan(CHAIN)


def test_plot_schedule_draws_each_step_where_and_when_it_runs():
    from chainorder import plot_schedule

    chain = Chain.from_dims([300, 120, 12, 120, 16, 140, 300])
    plan = optimize(chain, threads=3)
    fig, ax = plot_schedule(plan)
    bars = sorted((round(p.get_x()), round(p.get_width()), round(p.get_y() + p.get_height() / 2)) for p in ax.patches)
    assert bars == sorted((slot.start, slot.end - slot.start, slot.device) for slot in plan.schedule)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["thread 0", "thread 1", "thread 2"]
    with pytest.raises(ValueError, match="no schedule"):
        plot_schedule(optimize(chain))
    plt.close(fig)


def test_plot_sparsity_draws_every_nonzero_in_its_group_colour():
    import jax.numpy as jnp
    import numpy as np

    from chainorder import plot_sparsity

    def residual(u):  # a 5-point Laplacian on a 6 x 6 grid: banded, 5 column groups suffice
        inner = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
        return jnp.pad(inner + u[1:-1, 1:-1] ** 3, 1)

    fig, ax = plot_sparsity(residual, jnp.ones((6, 6)))
    points = ax.collections[0].get_offsets()
    expected = np.argwhere(np.asarray(chainorder.sparsity(residual, jnp.ones((6, 6))).todense()))
    assert sorted(map(tuple, np.asarray(points)[:, ::-1].astype(int))) == sorted(map(tuple, expected))
    colours = {tuple(c) for c in ax.collections[0].get_facecolors()}
    assert 5 <= len(colours) <= 7 and "lower bound 5" in ax.get_title()
    plt.close(fig)
