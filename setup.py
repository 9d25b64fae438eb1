"""Package discovery for the four mapped source roots.

pyproject.toml maps the import package `axc` onto four folders (`package-dir`); setuptools'
`packages.find` cannot prefix what it finds in a mapped folder, so the package list is derived
here from the same mapping instead of being written by hand (a hand list silently drops new
subpackages from the wheel).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
PACKAGE_DIR: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def discovered() -> list[str]:
    """Every package below each mapped folder, under its mapped import name."""
    names: list[str] = []
    for prefix, folder in PACKAGE_DIR.items():
        nested = {f"{prefix}.{found}" for found in find_packages(ROOT / folder)}
        names += [prefix, *sorted(nested - set(PACKAGE_DIR))]
    return names


setup(packages=discovered())
