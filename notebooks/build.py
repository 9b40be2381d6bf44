"""Write the notebooks from the cells below and execute them, saving their outputs.

Run from the repository root: python notebooks/build.py
(CI does not run this; it executes the saved notebooks with nbmake.)
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

AUTODIFF = [
    (
        "md",
        """# Autodiff, the functional way

A differentiable function $f:\\mathbb{R}^n \\to \\mathbb{R}^m$ has, at each point $x$, a
derivative: the **linear map** $Df(x): \\mathbb{R}^n \\to \\mathbb{R}^m$ that best approximates
$f$ near $x$. Its matrix is the Jacobian $J_f(x)$, $m \\times n$. Automatic differentiation never
needs to write that matrix down; it gives two ways to *apply* the linear map:

* the **JVP** (Jacobian-vector product, forward mode) pushes a tangent $v \\in \\mathbb{R}^n$ forward:
  $v \\mapsto J v$, at about the cost of one evaluation of $f$;
* the **VJP** (vector-Jacobian product, reverse mode) pulls a cotangent $u \\in \\mathbb{R}^m$ back:
  $u \\mapsto u^\\top J$, also at about the cost of one evaluation, plus a *tape* of what the
  forward evaluation left behind.

In JAX both are ordinary functions: `jax.jvp` and `jax.vjp`.""",
    ),
    (
        "code",
        """import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

rng = np.random.default_rng(0)
W = jnp.asarray(rng.standard_normal((3, 4)))
f = lambda x: jnp.tanh(W @ x)        # R^4 -> R^3
x = jnp.asarray(rng.standard_normal(4))

J = jax.jacobian(f)(x)               # the whole 3 x 4 matrix
v = jnp.array([1.0, 0.0, 0.0, 0.0])
y, Jv = jax.jvp(f, (x,), (v,))       # one column of J, without forming J
u = jnp.array([0.0, 1.0, 0.0])
y, pullback = jax.vjp(f, x)
(uJ,) = pullback(u)                  # one row of J
print(np.allclose(Jv, J[:, 0]), np.allclose(uJ, J[1, :]))""",
    ),
    (
        "md",
        """## A chain of Jacobians, and which end to start from

For a composition $L \\circ h \\circ g$ with $g:\\mathbb{R}^d\\to\\mathbb{R}^m$,
$h:\\mathbb{R}^m\\to\\mathbb{R}^n$ and a scalar loss $L:\\mathbb{R}^n\\to\\mathbb{R}$, the chain rule
says the gradient's transpose is the product

$$\\underbrace{J_L}_{1\\times n}\\;\\underbrace{J_h}_{n\\times m}\\;\\underbrace{J_g}_{m\\times d}.$$

Matrix multiplication is associative, but the two bracketings cost very differently:

* starting at the loss, $(J_L J_h) J_g$: a $1\\times n$ times $n\\times m$ product ($nm$
  multiply-adds), then $1\\times m$ times $m\\times d$ ($md$): **O(nm + md)**. Every intermediate
  is a row vector. This is reverse mode: backpropagation.
* starting at the input, $J_L (J_h J_g)$: $n\\times m$ times $m\\times d$ ($nmd$), then
  $1\\times n$ times $n\\times d$ ($nd$): **O(nmd + nd)**: a whole matrix in the middle.

With $d = m = n = 1000$ that is two million against a billion. chainorder's cost model
counts exactly these products (dense products of preaccumulated Jacobians here):""",
    ),
    (
        "code",
        """from chainorder import Chain, optimize

d, m, n = 1000, 1000, 1000
chain = Chain.from_dims([d, m, n, 1])          # g, h, L as dense layers
dense_only = optimize(chain, matrix_free=False)
print("from the loss end:", n * m + m * d)
print("from the input end:", n * m * d + n * d)
print("chainorder, dense products only:", dense_only.cost)
for step in dense_only.steps:
    print(f"   {step.kind:<24} layers {step.first}..{step.last}  {step.cost:>13,}")
print("chainorder, pure reverse mode:", optimize(chain, "reverse").cost,
      " pure forward mode:", optimize(chain, "forward").cost)""",
    ),
    (
        "md",
        """The dense-only plan does its two products from the loss end (the last two lines:
1,000,000 multiply-adds each), but it first has to *form* $J_g$ and $J_h$, one JVP or VJP
per column or row, and that costs a billion each. Pure reverse mode never forms them: it
pulls the single row of $J_L$ back through each layer, one VJP each, for
`1 * (E_g + E_h + E_L)`: the cost of a few function evaluations.

## Backpropagation by hand, in numpy

Each layer is a function $f(x, w)$ of its input *and* its parameters. For each we write the
two VJPs: one that pulls a cotangent back to $x$, one to $w$. Backprop is then: run forward,
keep what each VJP needs (the tape), and walk back from the loss, handing each layer the
cotangent of its output.""",
    ),
    (
        "code",
        """def dense_forward(x, W):
    z = W @ x
    return np.tanh(z), (x, W, np.tanh(z))           # output, tape


def dense_vjp_x(tape, u):                          # u: cotangent of the output
    x, W, y = tape
    return W.T @ (u * (1 - y**2))


def dense_vjp_w(tape, u):
    x, W, y = tape
    return np.outer(u * (1 - y**2), x)


def loss_forward(y, target):
    return 0.5 * np.sum((y - target) ** 2), (y, target)


def loss_vjp_y(tape, u):                           # u is the scalar 1.0
    y, target = tape
    return u * (y - target)


rng = np.random.default_rng(1)
W1, W2 = rng.standard_normal((5, 4)), rng.standard_normal((3, 5))
x, target = rng.standard_normal(4), rng.standard_normal(3)

# forward, keeping the tapes
h, tape1 = dense_forward(x, W1)
y, tape2 = dense_forward(h, W2)
loss, tape3 = loss_forward(y, target)

# backward: from the loss end, each layer gets the cotangent of its output
u_y = loss_vjp_y(tape3, 1.0)
grad_W2 = dense_vjp_w(tape2, u_y)
u_h = dense_vjp_x(tape2, u_y)
grad_W1 = dense_vjp_w(tape1, u_h)
grad_x = dense_vjp_x(tape1, u_h)


def loss_jax(W1, W2, x):
    y = jnp.tanh(W2 @ jnp.tanh(W1 @ x))
    return 0.5 * jnp.sum((y - target) ** 2)


reference = jax.grad(loss_jax, argnums=(0, 1, 2))(W1, W2, x)
print([np.allclose(a, b) for a, b in zip((grad_W1, grad_W2, grad_x), reference)])""",
    ),
    (
        "md",
        """## The same with `jax.vjp`

`jax.vjp` returns the output and the pullback (the VJP with its tape closed over), for any
function: we only have to compose the pullbacks in the reverse order.""",
    ),
    (
        "code",
        """layer1 = lambda W, x: jnp.tanh(W @ x)
layer2 = lambda W, h: jnp.tanh(W @ h)
loss_fn = lambda y: 0.5 * jnp.sum((y - target) ** 2)

h, pull1 = jax.vjp(layer1, W1, x)
y, pull2 = jax.vjp(layer2, W2, h)
loss, pull3 = jax.vjp(loss_fn, y)

(u_y,) = pull3(1.0)
g_W2, u_h = pull2(u_y)
g_W1, g_x = pull1(u_h)
print([np.allclose(a, b) for a, b in zip((g_W1, g_W2, g_x), reference)])""",
    ),
    (
        "md",
        """For a scalar loss reverse mode is always right. For a **Jacobian** with many outputs
*and* many inputs, neither end is right in general: that is what the chainorder tour is about.""",
    ),
]

REGRESSION = [
    (
        "md",
        """# Linear regression in JAX

Fit $y = X w + b$ by gradient descent on the mean squared error, with `jax.grad` computing the
gradient (reverse mode: one scalar loss, many parameters).""",
    ),
    (
        "code",
        """import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

rng = np.random.default_rng(0)
true_w, true_b = jnp.array([2.0, -3.0, 0.5]), 1.5
X = jnp.asarray(rng.standard_normal((200, 3)))
y = X @ true_w + true_b + 0.1 * jnp.asarray(rng.standard_normal(200))


def loss(params, X, y):
    w, b = params
    return jnp.mean((X @ w + b - y) ** 2)


grad = jax.jit(jax.grad(loss))
params = (jnp.zeros(3), jnp.array(0.0))
history = []
for _ in range(200):
    g_w, g_b = grad(params, X, y)
    params = (params[0] - 0.1 * g_w, params[1] - 0.1 * g_b)
    history.append(float(loss(params, X, y)))

print("w =", np.round(params[0], 3), " b =", round(float(params[1]), 3))
print("final loss", history[-1])""",
    ),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(history)
ax.set_xlabel("gradient step")
ax.set_ylabel("mean squared error")
ax.set_title("Training loss")
plt.show()""",
    ),
    (
        "md",
        """The loss falls to the noise level (0.1² = 0.01) and the fitted weights are close to
`[2, -3, 0.5]` and `1.5`. The gradient of a scalar is a 1 x 4 Jacobian, the easiest case
for reverse mode; Jacobians with many rows and columns are where the order of the product
starts to matter.""",
    ),
]

TOUR = [
    (
        "md",
        """# A tour of chainorder

The Jacobian of a 1024-512-16-512-1024 autoencoder is 1024 x 1024. Forward mode pushes 1024
tangents through the whole network; reverse mode pulls 1024 cotangents back through it. Both
ignore the 16-wide bottleneck, where the Jacobian has rank 16. chainorder finds the plan that
uses it.""",
    ),
    (
        "code",
        """import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import chainorder
from chainorder import Chain, optimize, pareto

rng = np.random.default_rng(0)
dims = [1024, 512, 16, 512, 1024]
weights = [jnp.asarray(rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]), jnp.float32)
           for i in range(4)]
layers = [lambda v, W=W: jnp.tanh(W @ v) for W in weights]
x = jnp.asarray(rng.standard_normal(1024), jnp.float32)

chain = Chain.from_functions(layers, x)   # dims from shapes, costs counted on the jaxprs
plan = optimize(chain)
print(plan)""",
    ),
    (
        "md",
        """Reading the table: the plan pulls 16 rows back from the bottleneck to the input (adjoint
steps, VJPs), pushes 16 columns from the bottleneck to the output (tangent steps, JVPs), and
multiplies the 1024 x 16 and 16 x 1024 results. About 30 times fewer multiply-adds than either
pure mode.

## Cost against memory

Every plan also has a peak memory (in elements: the primal values, the Jacobians alive, the
tape of each adjoint). `pareto` returns the plans that no other plan beats in both.""",
    ),
    (
        "code",
        """wide = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])
front = pareto(wide)
for p in front:
    print(f"{p.peak_memory:>9,} elements  {p.cost:>12,} FMAs  {p.mode}")
limited = optimize(wide, memory_limit=150_000)
fig, ax = chainorder.plot_tradeoff(wide, chosen=limited)
plt.show()""",
    ),
    (
        "code",
        """fig, ax = chainorder.plot_plan(plan)
plt.show()""",
    ),
    (
        "md",
        """## Running the plan

`plan.jacobian(x)` executes the steps with `jax.linearize`/`jax.vjp` under `vmap` and a
matmul, as one jitted program; `plan.validate(x)` compares it with `jax.jacobian`.""",
    ),
    (
        "code",
        """print(plan.validate(x))


def median_ms(function, repeat=15):
    function(x).block_until_ready()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


for name, function in [("jax.jacfwd", jax.jit(jax.jacfwd(chain))),
                       ("jax.jacrev", jax.jit(jax.jacrev(chain))),
                       ("chainorder", jax.jit(plan.jacobian))]:
    print(f"{name:<11} {median_ms(function):8.3f} ms")""",
    ),
    (
        "md",
        """## A real model, as it is written

`chainorder.trace` finds the chain inside an ordinary JAX function (here an MLP with biases
written in a loop), `chainorder.analyze` reports its segments and the plan, and
`chainorder.jacobian` is a drop-in for `jax.jacobian`.""",
    ),
    (
        "code",
        """params = [(W, jnp.zeros(W.shape[0], jnp.float32)) for W in weights]


def model(v):
    for W, b in params[:-1]:
        v = jnp.tanh(W @ v + b)
    W, b = params[-1]
    return W @ v + b


print(chainorder.analyze(model, x))
J = jax.jit(chainorder.jacobian(model))(x)
print(J.shape, float(jnp.max(jnp.abs(J - jax.jacobian(model)(x)))))""",
    ),
]


def build(name: str, cells: list[tuple[str, str]]) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in cells:
        maker = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        notebook.cells.append(maker(source))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nbformat.write(notebook, HERE / name)
    print("wrote", HERE / name)


if __name__ == "__main__":
    build("01_autodiff_functional.ipynb", AUTODIFF)
    build("02_linear_regression.ipynb", REGRESSION)
    build("03_chainorder_tour.ipynb", TOUR)
