"""The lock file is what gets installed: every package the project needs, at the locked version.

`scripts/install.sh` installs with requirements/lock.txt as pip's constraints, so a fresh machine
gets the versions the tests ran with, whatever newer releases exist. These tests walk the
installed requirement graph of gemma-arena (with its extras) and compare it with the lock.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
EXTRAS = ("test", "quantization")


def locked_versions() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def required_distributions() -> dict[str, str]:
    """Every distribution gemma-arena needs, transitively, with the extras installed here:
    name -> the requirement that brought it in."""
    needed: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...], str]] = [("gemma-arena", EXTRAS, "gemma-arena")]
    while todo:
        name, extras, why = todo.pop()
        key = canonicalize_name(name)
        if key in needed and not extras:
            continue
        needed[key] = why
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            todo.append((requirement.name, tuple(requirement.extras), f"{name} -> {text}"))
    needed.pop("gemma-arena")
    return needed


def public(version: str | Version) -> Version:
    """The version without a local label: torch 2.14.1+cpu is torch 2.14.1 built for the CPU."""
    return Version(Version(str(version)).public)


def test_lock_pins_every_package_the_project_needs() -> None:
    pins = locked_versions()
    missing = sorted(name for name in required_distributions() if name not in pins)
    assert missing == [], f"not in requirements/lock.txt (run `make lock`): {missing}"


def test_installed_versions_are_the_locked_ones() -> None:
    pins = locked_versions()
    wrong = []
    for name in required_distributions():
        installed = public(metadata.version(name))
        if name in pins and installed != pins[name]:
            wrong.append(f"{name} {installed} installed, {pins[name]} locked")
    assert wrong == [], "reinstall with `make test` (it installs the lock): " + "; ".join(wrong)


def test_pyproject_ranges_admit_the_locked_versions() -> None:
    """pyproject.toml keeps ranges for people who install the package into their own environment;
    the lock must be one of the environments those ranges allow."""
    pins = locked_versions()
    for text in metadata.requires("gemma-arena") or []:
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, requirement.name
        assert requirement.specifier.contains(pinned, prereleases=True), f"{text} excludes the locked {pinned}"


@pytest.mark.parametrize("package", ["torch", "torchvision"])
def test_torch_pair_is_pinned_by_version_not_by_file(package: str) -> None:
    """Machines differ: some carry a local torch build of the locked version, others fetch it from
    PyPI. A version pin installs on both; a hash of one file would refuse the other."""
    text = LOCK.read_text()
    assert re.search(rf"^{package}==\d+\.\d+\.\d+\s*$", text, re.M), f"{package} must be pinned as {package}==X.Y.Z"
    assert "--hash" not in text
