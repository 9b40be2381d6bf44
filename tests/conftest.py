"""Float64 everywhere in the tests unless a test asks for float32 explicitly; in CI the
property tests draw the same examples every run (derandomized), locally new ones each run.
Predicted times use the analytic default profile, never a profile this machine's user
calibrated (the cache points at an empty folder). The hypothesis strategies the test
modules share live here too."""

import os
import tempfile

os.environ["CHAINORDER_CACHE"] = tempfile.mkdtemp(prefix="chainorder-test-cache-")

import jax
from hypothesis import settings
from hypothesis import strategies as st

from chainorder import Chain, Layer

jax.config.update("jax_enable_x64", True)

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@st.composite
def chains(draw, max_length=6, max_dim=60, max_cost=5000, colors=False):
    """Random chains; with ``colors``, some layers sparse (columns and rows colored into fewer
    JVPs and VJPs than their dimensions) and some explicit (Jacobian written at ``m * n``)."""
    length = draw(st.integers(1, max_length))
    dims = draw(st.lists(st.integers(1, max_dim), min_size=length + 1, max_size=length + 1))
    layers = []
    for i in range(length):
        edges = draw(st.integers(0, max_cost))
        tangent = draw(st.integers(0, max_cost))
        adjoint = draw(st.integers(0, 3 * max_cost))
        sparse = colors and draw(st.booleans())
        tangent_colors = draw(st.integers(1, dims[i])) if sparse else None
        adjoint_colors = draw(st.integers(1, dims[i + 1])) if sparse else None
        explicit = colors and draw(st.booleans())
        layers.append(
            Layer(
                dims[i], dims[i + 1], edges=edges, tangent_cost=tangent, adjoint_cost=adjoint,
                tangent_colors=tangent_colors, adjoint_colors=adjoint_colors, explicit=explicit,
            )  # fmt: skip
        )
    return Chain(layers)


options = st.fixed_dictionaries(
    {
        "matrix_free": st.booleans(),
        "parallel": st.booleans(),
        "tape_limit": st.one_of(st.none(), st.integers(0, 12000)),
    }
)
