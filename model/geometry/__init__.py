"""Camera geometry core: intrinsics, rigid transforms, target viewpoints and the forward warp (docs/DESIGN.md
contracts 1, 2).

Modules, bottom up (each imports only the ones above it):
    base        shared types and constants: GeometryError, WarpSettings, WarpResult, the raster edge epsilon
    camera      pinhole intrinsics and rigid transforms (poses, quaternions)
    viewpoints  target viewpoints: orbit, pose, the LIBERO sampler
    depth_repair  sensor depth made fit for the warp: validation, flying pixels, colour-guided hole filling, reliability
    depth_repair_numba  its compiled kernels (numba, GIL released)
    warp        the forward warp front end (validation, temporal fusion), which picks a back end:
    warp_numba  the compiled CPU kernel        warp_torch  the same algorithm on torch tensors (CPU or CUDA)

The public names are re-exported here: `from model.geometry import forward_warp, PinholeCamera, ...`. Importing the
package loads neither numba nor torch; each back end is imported when first used.
"""

from model.geometry.base import DEFAULT_SETTINGS, EDGE_EPS, GeometryError, WarpResult, WarpSettings, intrinsics_vector
from model.geometry.camera import (
    PinholeCamera,
    check_intrinsics,
    check_rigid,
    invert_transform,
    matrix_to_pose,
    matrix_to_quaternion,
    pose_to_matrix,
    quaternion_to_matrix,
    rotation_x,
    rotation_y,
)
from model.geometry.depth_repair import fill_depth_holes, repair_depth, validate_depth
from model.geometry.viewpoints import (
    VIEW_DIRECTIONS,
    OrbitTarget,
    PoseTarget,
    ViewpointSampler,
    centre_depth,
    target_transform,
)
from model.geometry.warp import forward_warp, forward_warp_clip, static_neighbour_depth

__all__ = [
    "DEFAULT_SETTINGS",
    "EDGE_EPS",
    "VIEW_DIRECTIONS",
    "GeometryError",
    "OrbitTarget",
    "PinholeCamera",
    "PoseTarget",
    "ViewpointSampler",
    "WarpResult",
    "WarpSettings",
    "centre_depth",
    "check_intrinsics",
    "check_rigid",
    "fill_depth_holes",
    "forward_warp",
    "forward_warp_clip",
    "intrinsics_vector",
    "invert_transform",
    "matrix_to_pose",
    "matrix_to_quaternion",
    "pose_to_matrix",
    "quaternion_to_matrix",
    "repair_depth",
    "rotation_x",
    "rotation_y",
    "static_neighbour_depth",
    "target_transform",
    "validate_depth",
]
