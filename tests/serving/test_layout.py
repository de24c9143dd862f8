"""The model-base layout (``serving/layout.py``): names, version directories, immutable versions, the staged rename."""
from __future__ import annotations

import pytest

from tfxformers.errors import UserError
from tfxformers.serving import layout


@pytest.mark.parametrize("name", ["sentiment", "emma-2", "a_b", "X9"])
def test_good_model_names(name):
    assert layout.check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "../up", "a/b", "caf\u00e9?", "v1.2"])
def test_bad_model_names_say_what_is_allowed(name):
    with pytest.raises(UserError, match=r"must be letters, digits, '-' or '_'"):
        layout.check_model_name(name)
    with pytest.raises(UserError, match=r"^--name .* \(why\)$"):
        layout.check_model_name(name, "--name", " (why)")


def test_versions_are_integer_directories_only(tmp_path):
    model = tmp_path / "m"
    for name in ("1", "10", "2", ".export-3-abc", ".push-1234", "latest"):
        (model / name).mkdir(parents=True)
    (model / "4").write_text("a file, not a version")
    assert layout.version_dirs(model) == [1, 2, 10]
    assert sorted(layout.version_numbers(model)) == [1, 2, 10]
    assert layout.next_version(tmp_path, "m") == 11
    assert layout.next_version(tmp_path, "missing") == 1
    assert layout.version_dirs(model / "4") == []  # a file is no model directory
    # gfile lists directories with a trailing slash.
    assert layout.integer_versions(["3/", "12", ".push-9/", "x"]) == [3, 12]
    assert layout.next_version_after([]) == 1


def test_new_version_path_refuses_existing_versions_and_bad_numbers(tmp_path):
    final, model_dir, version = layout.new_version_path(tmp_path, "m", None)
    assert (final, model_dir, version) == (tmp_path / "m" / "1", tmp_path / "m", 1)
    assert model_dir.is_dir() and not final.exists()
    final.mkdir()
    assert layout.new_version_path(tmp_path, "m", None)[2] == 2
    with pytest.raises(UserError, match="already exists; versions are immutable, choose another --version"):
        layout.new_version_path(tmp_path, "m", 1)
    with pytest.raises(UserError, match="--version must be a positive integer"):
        layout.new_version_path(tmp_path, "m", 0)
    with pytest.raises(UserError, match="must be letters"):
        layout.new_version_path(tmp_path, "m n", None)


def test_a_staged_version_appears_whole_and_the_staging_directory_goes(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    final = model_dir / "1"
    with layout.staging_directory(model_dir, 1) as tmp:
        staging = tmp / "model"
        (staging / layout.ASSETS_EXTRA).mkdir(parents=True)
        (staging / layout.ASSETS_EXTRA / layout.VERSION_INFO_FILE).write_text("{}")
        assert tmp.parent == model_dir and tmp.name.startswith(".")
        assert layout.version_dirs(model_dir) == []  # a server polling now sees nothing
        layout.publish(staging, final)
    assert (final / "assets.extra" / "tfxformers.json").read_text() == "{}"
    assert [p.name for p in model_dir.iterdir()] == ["1"]
