"""The robot layer runs on the node's prepare thread while the fill thread composes and publishes: every compiled
robot kernel must release the GIL. tests/geometry/test_geometry_warp_gil.py checks the warp's kernels by behaviour;
here every numba kernel the robot modules define is found by walking the modules, so a kernel added later without
`nogil=True` fails this test without anyone listing it."""

import importlib

import numba
import pytest
from numba.core.registry import CPUDispatcher

ROBOT_KERNEL_MODULES = ("model.robot.kernels", "model.robot.raster", "model.robot.appearance", "model.robot.model")


def compiled_kernels(module_name: str) -> dict[str, CPUDispatcher]:
    module = importlib.import_module(module_name)
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module_name
    }


def test_the_walk_finds_a_kernel_without_nogil():
    def summed(values):  # pragma: no cover - compiled
        return values.sum()

    assert not numba.njit(summed).targetoptions.get("nogil", False)
    assert numba.njit(nogil=True)(summed).targetoptions["nogil"]


@pytest.mark.parametrize("module_name", ROBOT_KERNEL_MODULES)
def test_every_robot_kernel_releases_the_gil(module_name):
    kernels = compiled_kernels(module_name)
    assert kernels, f"{module_name} defines no compiled kernel any more: update ROBOT_KERNEL_MODULES"
    holding = sorted(name for name, kernel in kernels.items() if not kernel.targetoptions.get("nogil", False))
    assert not holding, f"compiled without nogil=True in {module_name}: {holding}"
