"""Float64 everywhere in the tests unless a test asks for float32 explicitly; in CI the
property tests draw the same examples every run (derandomized), locally new ones each run."""

import os

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
