import os

# MuJoCo picks its GL backend at import time; the machines here render headless through EGL (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")
