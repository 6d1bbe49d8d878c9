"""The package list in pyproject.toml is written by hand (one package is mapped from cards/): keep it complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "cds_service").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    mapped = set(config["package-dir"])
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found <= mapped, f"listed packages that do not exist: {sorted(listed - found - mapped)}"


def test_the_fhir_library_is_imported_in_one_place() -> None:
    importers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "cds_service").rglob("*.py")
        if "fhir.resources" in p.read_text()
        and "import" in p.read_text()
        and any(
            line.lstrip().startswith(("from fhir.resources", "import fhir.resources"))
            for line in p.read_text().splitlines()
        )
    ]
    assert importers == ["cds_service/fhir/r4b.py"]


def test_the_jose_library_is_imported_in_one_place() -> None:
    importers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "cds_service").rglob("*.py")
        if any(line.lstrip().startswith(("from jose", "import jose")) for line in p.read_text().splitlines())
    ]
    assert importers == ["cds_service/auth/jose_backend.py"]
