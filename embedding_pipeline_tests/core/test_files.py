"""Files and folders appear whole or not at all."""

import pytest

from embedding_pipeline.files import atomic_folder, atomic_write


def test_a_write_that_fails_leaves_the_old_file_and_no_trace(tmp_path):
    path = tmp_path / "aliases.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as file:
        file.write("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["aliases.json"]
    with atomic_write(path) as file:
        file.write("new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["aliases.json"]


def test_a_folder_appears_once_filled_and_replaces_what_was_there(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "model.onnx").write_text("half")
        raise RuntimeError("export failed")
    assert list(tmp_path.iterdir()) == []
    target.mkdir()
    (target / "leftover").write_text("x")
    with pytest.raises(OSError), atomic_folder(target) as staging:  # never over a folder unless asked
        (staging / "model.onnx").write_text("whole")
    assert [p.name for p in target.iterdir()] == ["leftover"] and list(tmp_path.iterdir()) == [target]
    with atomic_folder(target, replace=True) as staging:
        (staging / "model.onnx").write_text("whole")
    assert [p.name for p in target.iterdir()] == ["model.onnx"] and list(tmp_path.iterdir()) == [target]
