"""Scheduled plans executed: each step on the device its schedule names, independent steps at once.

A plan made with ``optimize(chain, threads=T)`` carries a schedule: one
``(device, start, end)`` per step (:mod:`chainorder.core.schedule`). Here the
primal pass runs once (jitted, on the first device); then each step, in the
plan's order (by start time), is a jitted function of the primal values and its
operands, called on its device: ``jax.device_put`` moves the operands there (a
no-op where they already are) and the call is dispatched asynchronously, so
steps on different devices run at the same time. JAX places, compiles and runs
them: there is no scheduler of ours at run time, only the order of dispatch.

The result (``jax.jacobian``'s shape and dtype) lives on the device of the last step.
Unlike a plan on one device this is not one jitted program: it is called eagerly
(not under ``jax.jit`` or ``jax.vmap``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..core.plan import Plan
from .execute import check_input, flat_layers
from .explicit import dense
from .steprun import EXECUTORS, Run

__all__ = ["scheduled_jacobian", "schedule_devices"]

# jitted step functions and primal passes by plan identity
_COMPILED: dict[int, dict[Any, Callable]] = {}


def schedule_devices(plan: Plan, devices: Sequence[Any] | Any) -> list[Any]:
    """The devices the plan's threads run on: its first ``plan.threads`` of ``devices``
    (a list of ``jax.Device`` or a ``jax.sharding.Mesh``).

    Raises
    ------
    TypeError, ValueError
        For anything else, fewer devices than the plan's threads, or mixed platforms.
    """
    if isinstance(devices, jax.sharding.Mesh):
        devices = list(devices.devices.flat)
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
        raise TypeError(f"devices must be a list of jax devices or a jax.sharding.Mesh, got {type(devices).__name__}")
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise ValueError("devices must be a non-empty list of jax devices (for example jax.devices())")
    if len(devices) < plan.threads:  # type: ignore[operator]
        raise ValueError(
            f"the plan is scheduled on {plan.threads} threads but {len(devices)} devices were given; "
            f"pass at least {plan.threads} (or optimize with threads={len(devices)})"
        )
    platforms = {device.platform for device in devices[: plan.threads]}
    if len(platforms) > 1:
        raise ValueError(f"devices must share one platform, got {sorted(platforms)}")
    return list(devices[: plan.threads])


def _compiled(plan: Plan) -> dict[Any, Callable]:
    cached = _COMPILED.get(id(plan))
    if cached is None:
        cached = _COMPILED[id(plan)] = {}
        weakref.finalize(plan, _COMPILED.pop, id(plan), None)
    return cached


def _primal_pass(plan: Plan, flats: list[Callable], shape: tuple[int, ...], dtype: Any) -> Callable:
    key = ("primal", shape, str(dtype))
    table = _compiled(plan)
    if key not in table:
        table[key] = jax.jit(lambda vector: Run(flats, vector).values)
    return table[key]


def _needed(step) -> tuple[int, ...]:
    """The primal values a step reads: the input of the layers it goes through and the output."""
    through = step.layers_applied
    return () if through is None else (through[0], through[1] + 1)


def _step_function(plan: Plan, index: int, flats: list[Callable], shape: tuple[int, ...], dtype: Any) -> Callable:
    key = ("step", index, shape, str(dtype))
    table = _compiled(plan)
    if key not in table:
        step = plan.steps[index]
        needed = _needed(step)

        def run(given, *operands):
            return EXECUTORS[step.kind](Run(flats, None, dict(zip(needed, given)), plan.chain), step, *operands)

        table[key] = jax.jit(run)
    return table[key]


def scheduled_jacobian(plan: Plan, x: Any, devices: Sequence[Any] | Any) -> jax.Array:
    """``jax.jacobian(plan.chain)(x)``, each step of the scheduled ``plan`` run on its device.

    Parameters
    ----------
    plan : Plan
        Made with ``threads=T`` (it has a schedule).
    x : array
    devices : list of jax.Device, or jax.sharding.Mesh
        At least ``T``; thread ``t`` of the schedule runs on ``devices[t]``.

    Returns
    -------
    jax.Array
        On the device of the plan's last step.
    """
    if plan.threads is None:
        raise ValueError("the plan has no schedule: make it with optimize(chain, threads=T)")
    placed = schedule_devices(plan, devices)
    x = check_input(plan.chain, x)
    table = _compiled(plan)
    layers_key = ("layers", tuple(x.shape), str(x.dtype))
    if layers_key not in table:
        table[layers_key] = flat_layers(plan.chain, x)
    flats, shapes = table[layers_key]
    vector = jax.device_put(jnp.reshape(x, (-1,)), placed[plan.schedule[0].device])
    values = _primal_pass(plan, flats, tuple(x.shape), x.dtype)(vector)
    on_device: dict[tuple[int, int], Any] = {}  # (thread, layer) -> that primal value there
    made_on: dict[tuple[int, int], int] = {}  # a Jacobian's span -> the thread that holds it
    jacobians: dict[tuple[int, int], Any] = {}
    for index, (step, slot) in enumerate(zip(plan.steps, plan.schedule)):
        device = placed[slot.device]
        given = []
        for layer in _needed(step):
            if (slot.device, layer) not in on_device:
                on_device[slot.device, layer] = jax.device_put(values[layer], device)
            given.append(on_device[slot.device, layer])
        operands = []
        for operand in step.operands:
            jacobian = jacobians.pop(operand)
            operands.append(jacobian if made_on.pop(operand) == slot.device else jax.device_put(jacobian, device))
        function = _step_function(plan, index, flats, tuple(x.shape), x.dtype)
        jacobians[step.span] = function(given, *operands)
        made_on[step.span] = slot.device
    jacobian = dense(jacobians[(0, len(plan.chain) - 1)])
    return jnp.reshape(jacobian, shapes[-1] + shapes[0]).astype(x.dtype)
