"""The JAX backend: executing plans, counting FMAs, cutting jaxprs, tracing functions.

==================  ==================================================================
module              what it holds
==================  ==================================================================
``execute``         one executor per step kind; plans run as one jitted program
``opcount``         FMAs of a JAX function's JVP and VJP, its tape; chains of functions
``cuts``            where to cut a jaxpr: where the live state is small
``segments``        the stretches between cuts as priced layers
``tracing``         ``trace``, ``analyze_chain``: a function's chain and plan
``dropin``          ``jacobian``: the drop-in for ``jax.jacobian``
``calls``           a call's signature, options and flattened function
``ravel``           a pytree of arrays as one flat vector
``planjacobian``    ``Plan.jacobian``: at a point, into ``out=``, over ``devices=``
``analysis``        ``analyze``: the chain, the plan and the strategy ``jacobian`` takes
``devices``         what the device can hold; refusing plans that cannot fit
``blocks``          out-of-core Jacobians: column or row blocks written into a host array
``sharding``        seeds sharded over devices: one block of columns or rows per device
``scheduled``       plans scheduled on T threads: each step on its device, concurrently
``patterns``        the Jacobian's nonzero pattern, found on the jaxpr
``compressed``      sparse Jacobians: the pattern, colors, one JVP or VJP per color
``sparseresult``    ``sparse=True``'s BCOOs in ``jax.jacobian``'s layout
``variants``        the drop-in's other ways: out of core, sharded, sparse, in blocks when no plan fits
``calibration``     measuring, saving and loading the device's machine profile
``xlaoptions``      the XLA options chainorder compiles a plan's Jacobian with
==================  ==================================================================

It imports the core; the core reaches it only through
:mod:`chainorder.core.engine`. The names below are what the engine asks for.
"""

from .analysis import analyze
from .calibration import calibrate, machine_profile
from .dropin import jacobian
from .execute import apply_chain, validate_plan
from .opcount import chain_from_functions
from .patterns import sparsity
from .planjacobian import plan_jacobian
from .tracing import trace
from .xlaoptions import compiler_options, plan_compiler_options

__all__ = [
    "analyze",
    "apply_chain",
    "calibrate",
    "chain_from_functions",
    "compiler_options",
    "jacobian",
    "machine_profile",
    "plan_compiler_options",
    "plan_jacobian",
    "sparsity",
    "trace",
    "validate_plan",
]
