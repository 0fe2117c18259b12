"""The README's Python API example runs as written, on a small synthetic RGB-D clip."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md lost its Python API example"
    H, W = 48, 64
    rng = np.random.default_rng(0)
    namespace = {
        "rgb": rng.integers(0, 255, (2, H, W, 3), dtype=np.uint8),
        "depth": np.full((2, H, W), 1.5, np.float32),
        "K": np.array([[60.0, 0, (W - 1) / 2], [0, 60.0, (H - 1) / 2], [0, 0, 1]]),
        "H": H,
        "W": W,
    }
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["frames"].shape == (2, H, W, 3) and namespace["frames"].dtype == np.uint8
    assert namespace["view"].T_dst_src.shape == (2, 4, 4)
    assert namespace["warp"].mask.any()
