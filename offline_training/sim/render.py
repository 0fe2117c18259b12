"""Offscreen rendering of RGB, metric depth and robot/object masks from a scene's cameras.

One OpenGL context per process is created lazily and reused for every scene (creating it costs ~1.8 s on these
machines, a new model's render context ~0.15 s). Two passes per view: the shaded colour pass, and a flat
segmentation pass whose depth buffer gives metric depth.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from .robots import HIDDEN_GROUP
from .scene import Scene, robot_geom_ids

_GL_CONTEXT: mujoco.GLContext | None = None
_GL_SIZE = 1280


def _gl_context() -> mujoco.GLContext:
    global _GL_CONTEXT
    if _GL_CONTEXT is None:
        # pick the backend from MUJOCO_GL now (headless EGL by default), not from whatever it was when something
        # first imported mujoco
        backend = os.environ.get("MUJOCO_GL", "egl").lower()
        if backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            GLContext = mujoco.GLContext
        _GL_CONTEXT = GLContext(_GL_SIZE, _GL_SIZE)
    _GL_CONTEXT.make_current()
    return _GL_CONTEXT


def set_state(scene: Scene, qpos: np.ndarray) -> None:
    """Set the full state ``qpos`` (nq,) (robot joints and loose objects) and update body poses for rendering."""
    scene.data.qpos[:] = qpos
    mujoco.mj_kinematics(scene.model, scene.data)


class SceneRenderer:
    """Renders a :class:`Scene` from its ``src``/``tgt`` cameras at ``height`` x ``width``.

    Use as a context manager, or call :meth:`close`, to free the model's GPU-side resources.
    """

    def __init__(self, scene: Scene, height: int, width: int) -> None:
        if max(height, width) > _GL_SIZE:
            raise ValueError(f"resolution {height}x{width} exceeds the {_GL_SIZE}px offscreen buffer")
        self.scene, self.height, self.width = scene, height, width
        model = scene.model
        model.vis.global_.offwidth, model.vis.global_.offheight = _GL_SIZE, _GL_SIZE  # read by MjrContext below
        _gl_context()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._mjv_scene = mujoco.MjvScene(model, maxgeom=max(1000, 2 * model.ngeom))
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 1
        self._option.geomgroup[HIDDEN_GROUP] = 0
        self._option.sitegroup[:] = 0
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._cameras: dict[str, tuple[mujoco.MjvCamera, float]] = {}
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._ids = np.empty((height, width, 3), np.uint8)
        self._zbuf = np.empty((height, width), np.float32)
        extent = model.stat.extent
        self._near, self._far = model.vis.map.znear * extent, model.vis.map.zfar * extent
        # geom id -> 1 for mask geoms (robot and objects) / for robot geoms, 0 otherwise
        self._geom_label = np.zeros(model.ngeom, np.uint8)
        self._geom_label[scene.mask_geom_ids] = 1
        self._robot_geom = np.zeros(model.ngeom, np.uint8)
        self._robot_geom[robot_geom_ids(scene)] = 1

    def set_camera(self, name: str, T_world_cam: np.ndarray, fovy_deg: float) -> None:
        """Define camera ``name`` at the optical pose ``T_world_cam`` (4, 4) with vertical field of view ``fovy_deg``.

        Rendered through MuJoCo's free camera (azimuth/elevation about world z, no roll), so the scene needs no
        camera of its own; a pose with roll (image x not horizontal) is refused.
        """
        R = T_world_cam[:3, :3]
        if abs(R[2, 0]) > 1e-6:
            raise ValueError(f"camera '{name}' has roll (its image x axis is not horizontal): use camera.look_at")
        forward = R[:, 2]
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.azimuth = np.rad2deg(np.arctan2(forward[1], forward[0]))
        cam.elevation = np.rad2deg(np.arcsin(np.clip(forward[2], -1, 1)))
        cam.distance = 1.0
        cam.lookat[:] = T_world_cam[:3, 3] + forward
        self._cameras[name] = (cam, float(fovy_deg))

    def render(self, camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Render the current state (call :func:`set_state` after changing it) from ``camera``.

        Returns:
            rgb (H, W, 3) uint8, depth (H, W) float32 metres with 0 where nothing was hit, mask (H, W) uint8 with 1 on
            robot and object pixels, robot (H, W) uint8 with 1 on robot pixels only.
        """
        _gl_context()
        model, data = self.scene.model, self.scene.data
        if camera not in self._cameras:
            raise KeyError(f"camera '{camera}' is not set: call set_camera first")
        cam, model.vis.global_.fovy = self._cameras[camera]
        mujoco.mjv_updateScene(model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL.value, self._mjv_scene)
        mujoco.mjr_render(self._rect, self._mjv_scene, self._ctx)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._ctx)
        rgb = np.flipud(self._rgb).copy()

        flags = self._mjv_scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            mujoco.mjr_render(self._rect, self._mjv_scene, self._ctx)
            mujoco.mjr_readPixels(self._ids, self._zbuf, self._rect, self._ctx)
        finally:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
        depth = np.flipud(self._depth_metres(self._zbuf)).copy()
        label, robot = self._labels(np.flipud(self._ids))
        return rgb, depth, label, robot

    def _depth_metres(self, zbuf: np.ndarray) -> np.ndarray:
        """Reverse-Z depth buffer -> z-depth in metres; the far plane (background) becomes 0."""
        near, far = np.float32(self._near), np.float32(self._far)
        c = np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5)
        d = np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near))
        depth = (d / (zbuf.astype(np.float64) + c)).astype(np.float32)
        depth[(depth >= far * 0.999) | ~np.isfinite(depth)] = 0.0
        return depth

    def _labels(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = ids.astype(np.int64)
        segid = ids[..., 0] + (ids[..., 1] << 8) + (ids[..., 2] << 16)
        ngeom = self._mjv_scene.ngeom
        to_label = np.zeros(ngeom + 2, np.uint8)
        to_robot = np.zeros(ngeom + 2, np.uint8)
        for g in self._mjv_scene.geoms[:ngeom]:
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                to_label[g.segid + 1] = self._geom_label[g.objid]
                to_robot[g.segid + 1] = self._robot_geom[g.objid]
        segid = np.clip(segid, 0, ngeom + 1)
        return to_label[segid], to_robot[segid]

    def close(self) -> None:
        if self._ctx is not None:
            _gl_context()
            self._ctx.free()
            self._ctx = None

    def __enter__(self) -> "SceneRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
