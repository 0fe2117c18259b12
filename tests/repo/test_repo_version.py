"""One version: embody4d_ros.__version__ is the source; setup.py reads it, package.xml and CHANGELOG.md repeat it."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import embody4d_ros

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_carries_the_version():
    assert ET.parse(ROOT / "package.xml").getroot().findtext("version") == embody4d_ros.__version__


def test_setup_py_reads_the_version():
    result = subprocess.run(
        [sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == embody4d_ros.__version__


def test_changelog_has_a_section_for_the_version():
    headings = re.findall(r"^## \[?([0-9][^\]\s]*)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert embody4d_ros.__version__ in headings
