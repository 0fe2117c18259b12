# Quick start: `make demo` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Robot meshes ship inside these wheels; their own pins would downgrade numpy and mujoco, hence --no-deps.
ROBOT_WHEELS := robosuite==1.5.2 pybullet==3.2.7 dm-control==1.0.50 gymnasium-robotics==1.4.2 metaworld==3.1.1
export MUJOCO_GL ?= egl
export PYTHONDONTWRITEBYTECODE := 1
# DDS on loopback only, for every test, benchmark and example run from here (config/*_loopback.xml).
export CYCLONEDDS_URI := file://$(CURDIR)/config/cyclonedds_loopback.xml
export FASTDDS_DEFAULT_PROFILES_FILE := $(CURDIR)/config/fastdds_loopback.xml
# SYSTEM_DEFAULT leaves discovery to those files: LOCALHOST makes rmw_fastrtps announce every interface's address.
export ROS_AUTOMATIC_DISCOVERY_RANGE := SYSTEM_DEFAULT

.PHONY: setup demo test test-fast test-slow test-ros lint bench clean

setup: $(STAMP)

$(STAMP): setup.py
	# pyrealsense2 (the realsense extra) loads the system's libusb; install it where we may and it is missing
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! ldconfig -p | grep -q libusb-1.0.so.0; then \
		apt-get install -y -q libusb-1.0-0 || (apt-get update -q && apt-get install -y -q libusb-1.0-0); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU build of torch first: any other torch request pulls several GB of CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all]"
	$(PIP) install -q --no-deps $(ROBOT_WHEELS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/embody4d demo --out outputs/demo

# Every test: the fast suite, the slow suites and the node on a real ROS 2 graph (the README's test command).
test: test-fast test-slow test-ros

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Slower suites (rendering-heavy, end to end).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The node on a real ROS 2 graph: rclpy (Kilted) and message packages from PyPI wheels in a venv of its own, tf2_msgs
# generated from its interface definition (tests/ros/make_venv.sh). A missing rclpy fails these tests, never skips.
ROS_VENV := .venv-ros
ROS_STAMP := $(ROS_VENV)/.installed

$(ROS_STAMP): tests/ros/make_venv.sh tests/ros/tf2_msgs/msg/TFMessage.msg setup.py
	bash tests/ros/make_venv.sh $(ROS_VENV) $(PYTHON)
	touch $(ROS_STAMP)

test-ros: $(ROS_STAMP)
	EMBODY4D_REQUIRE_ROS=1 $(ROS_VENV)/bin/python -m pytest -q -m ros tests/ros

# ruff (lint + format check), mypy and the import-layer contracts (pyproject.toml); CI runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/embody4d bench

clean:
	rm -rf outputs .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
