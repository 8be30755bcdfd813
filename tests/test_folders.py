"""Image folders, CycleGAN's unpaired layout and metadata.jsonl captions."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.folders import (
    FolderImages,
    list_image_files,
    load_captions,
    load_image_folder,
    load_unpaired_folders,
)
from genlab.errors import DataError, ImageDecodeError


def save(path: Path, colour=(255, 0, 0), size=(20, 16), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)
    return path


def grey_of(value: int) -> tuple[int, int, int]:
    return (value, value, value)


@pytest.fixture
def good_folder(tmp_path) -> Path:
    root = tmp_path / "imgs"
    save(root / "b.png", grey_of(20))
    save(root / "a.jpg", grey_of(10), fmt="JPEG")
    save(root / "sub" / "c.PNG", grey_of(30))
    save(root / "sub" / "deeper" / "d.bmp", grey_of(40))
    (root / "readme.txt").write_text("not an image")
    save(root / ".hidden" / "e.png", grey_of(50))
    (root / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    return root


def test_sorted_recursive_listing(good_folder):
    rel = [p.relative_to(good_folder).as_posix() for p in list_image_files(good_folder)]
    assert rel == ["a.jpg", "b.png", "sub/c.PNG", "sub/deeper/d.bmp"]


def test_load_folder_shapes_order_and_values(good_folder):
    result = load_image_folder(good_folder, image_size=8, progress=False)
    assert isinstance(result, FolderImages)
    assert result.images.dtype == torch.uint8 and result.images.shape == (4, 3, 8, 8)
    assert [Path(p).name for p in result.paths] == ["a.jpg", "b.png", "c.PNG", "d.bmp"]
    assert result.skipped == [] and len(result) == 4
    means = result.images.float().mean(dim=(1, 2, 3))
    assert torch.allclose(means, torch.tensor([10.0, 20.0, 30.0, 40.0]), atol=2)


def test_load_folder_greyscale(good_folder):
    result = load_image_folder(good_folder, image_size=12, mode="L", progress=False)
    assert result.images.shape == (4, 1, 12, 12)


def test_load_is_deterministic(good_folder):
    one = load_image_folder(good_folder, image_size=8, progress=False)
    two = load_image_folder(good_folder, image_size=8, progress=False)
    assert one.paths == two.paths and torch.equal(one.images, two.images)


def test_limit(good_folder):
    result = load_image_folder(good_folder, image_size=8, limit=2, progress=False)
    assert [Path(p).name for p in result.paths] == ["a.jpg", "b.png"]
    assert result.images.shape == (2, 3, 8, 8)
    assert (
        load_image_folder(good_folder, image_size=8, limit=99, progress=False).images.shape[0] == 4
    )


def make_bad_folder(root: Path) -> Path:
    save(root / "1.png", grey_of(10))
    (root / "2_empty.png").write_bytes(b"")
    save(root / "3.png", grey_of(30))
    (root / "4_text.jpg").write_text("not a jpeg")
    save(root / "5.png", grey_of(50))
    return root


def test_bad_file_raises_by_default(tmp_path):
    root = make_bad_folder(tmp_path / "mixed")
    with pytest.raises(ImageDecodeError) as info:
        load_image_folder(root, image_size=8, progress=False)
    message = str(info.value)
    assert "2_empty.png" in message and "empty file" in message
    assert "data.skip_bad_files=true" in message
    assert info.value.path.endswith("2_empty.png")


def test_skip_bad_records_and_warns_once(tmp_path, caplog):
    root = make_bad_folder(tmp_path / "mixed")
    with caplog.at_level(logging.WARNING, logger="genlab.data"):
        result = load_image_folder(root, image_size=8, skip_bad=True, progress=False)
    assert [Path(p).name for p in result.paths] == ["1.png", "3.png", "5.png"]
    assert result.images.shape == (3, 3, 8, 8)
    assert [Path(p).name for p, _ in result.skipped] == ["2_empty.png", "4_text.jpg"]
    assert "empty file" in result.skipped[0][1]
    assert "not a recognised image format" in result.skipped[1][1]
    warnings = [
        r for r in caplog.records if r.name == "genlab.data" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "skipped 2 of 5" in warnings[0].getMessage()
    assert "2_empty.png" in warnings[0].getMessage() and "4_text.jpg" in warnings[0].getMessage()  # each one named
    means = result.images.float().mean(dim=(1, 2, 3))
    assert torch.allclose(means, torch.tensor([10.0, 30.0, 50.0]), atol=1)


def test_skip_bad_with_limit_counts_good_images(tmp_path):
    root = make_bad_folder(tmp_path / "mixed")
    result = load_image_folder(root, image_size=8, skip_bad=True, limit=2, progress=False)
    assert [Path(p).name for p in result.paths] == ["1.png", "3.png"]
    assert [Path(p).name for p, _ in result.skipped] == ["2_empty.png"]


def test_all_bad_files_is_a_data_error(tmp_path):
    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.png").write_bytes(b"")
    (root / "b.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 2 image files"):
        load_image_folder(root, image_size=8, skip_bad=True, progress=False)


def test_missing_root(tmp_path):
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path / "nowhere", image_size=8)
    assert "nowhere" in str(info.value) and ".png" in str(info.value)


def test_root_is_a_file(tmp_path):
    path = save(tmp_path / "one.png")
    with pytest.raises(DataError, match="not a directory"):
        load_image_folder(path, image_size=8)


def test_no_images(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as info:
        load_image_folder(root, image_size=8)
    message = str(info.value)
    assert "docs" in message and ".jpeg" in message and ".webp" in message


def test_progress_bar_runs(tmp_path, monkeypatch):
    import genlab.data.folders as folders

    monkeypatch.setattr(folders, "PROGRESS_MIN_FILES", 1)
    root = tmp_path / "few"
    for i in range(3):
        save(root / f"{i}.png", grey_of(i))
    assert load_image_folder(root, image_size=8, progress=True).images.shape[0] == 3


# --- unpaired layout ----------------------------------------------------------------------


def make_unpaired(root: Path) -> Path:
    for split in ("train", "test"):
        for i in range(3):
            save(root / f"{split}A" / f"{i}.png", (200, 0, 0))
        for i in range(2):
            save(root / f"{split}B" / f"{i}.jpg", (0, 0, 200), fmt="JPEG")
    return root


def test_unpaired_train_and_test(tmp_path):
    root = make_unpaired(tmp_path / "horse2zebra")
    a, b = load_unpaired_folders(root, image_size=8, progress=False)
    assert a.images.shape == (3, 3, 8, 8) and b.images.shape == (2, 3, 8, 8)
    assert all("trainA" in p for p in a.paths) and all("trainB" in p for p in b.paths)
    assert a.images[:, 0].float().mean() > 190 and b.images[:, 2].float().mean() > 180
    a, b = load_unpaired_folders(root, image_size=8, split="test", limit=1, progress=False)
    assert len(a) == 1 and len(b) == 1 and "testA" in a.paths[0]


def test_unpaired_missing_subfolder(tmp_path):
    root = tmp_path / "half"
    save(root / "trainA" / "0.png")
    with pytest.raises(DataError) as info:
        load_unpaired_folders(root, image_size=8)
    assert "trainB" in str(info.value)


def test_unpaired_bad_split_and_missing_root(tmp_path):
    root = make_unpaired(tmp_path / "ds")
    with pytest.raises(DataError, match="split"):
        load_unpaired_folders(root, image_size=8, split="val")
    with pytest.raises(DataError, match="absent"):
        load_unpaired_folders(tmp_path / "absent", image_size=8)


# --- captions -----------------------------------------------------------------------------


def write_jsonl(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "metadata.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_captions_parse(tmp_path):
    root = tmp_path / "birds"
    write_jsonl(
        root,
        [
            json.dumps({"file_name": "a.png", "text": "a red bird"}),
            "",
            json.dumps({"file_name": "./sub/b.png", "text": ["a blue bird", "small bird"]}),
            json.dumps({"file_name": "a.png", "text": "on a branch", "extra": 3}),
            json.dumps({"file_name": "c.png", "text": "caf\u00e9 \u2615"}, ensure_ascii=False),
        ],
    )
    captions = load_captions(root)
    assert captions == {
        "a.png": ["a red bird", "on a branch"],
        "sub/b.png": ["a blue bird", "small bird"],
        "c.png": ["caf\u00e9 \u2615"],
    }
    assert load_captions(root / "metadata.jsonl") == captions


@pytest.mark.parametrize(
    "bad_line,fragment",
    [
        ('{"file_name": "b.png", "text": "unterminated', "not valid JSON"),
        ('["b.png", "text"]', "expected a JSON object"),
        ('{"text": "no file name"}', "file_name"),
        ('{"file_name": "b.png"}', '"text"'),
        ('{"file_name": "b.png", "text": [1, 2]}', '"text"'),
    ],
)
def test_captions_malformed_line(tmp_path, bad_line, fragment):
    path = write_jsonl(
        tmp_path / "ds", [json.dumps({"file_name": "a.png", "text": "fine"}), bad_line]
    )
    with pytest.raises(DataError) as info:
        load_captions(tmp_path / "ds")
    message = str(info.value)
    assert str(path) in message and "line 2" in message and fragment in message


def test_captions_missing_metadata(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DataError, match="metadata.jsonl"):
        load_captions(tmp_path / "ds")


def test_captions_bom_and_bad_utf8(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "metadata.jsonl").write_bytes(
        "\ufeff".encode() + b'{"file_name": "a.png", "text": "x"}\n\xff\xfe\n'
    )
    with pytest.raises(DataError, match="line 2: not valid UTF-8"):
        load_captions(root)
    (root / "metadata.jsonl").write_bytes(
        "\ufeff".encode() + b'{"file_name": "a.png", "text": "x"}'
    )
    assert load_captions(root) == {"a.png": ["x"]}


def test_folder_images_tensor_is_uint8_contiguous(good_folder):
    images = load_image_folder(good_folder, image_size=8, progress=False).images
    assert images.is_contiguous()
    assert np.asarray(images.numpy()).dtype == np.uint8


def test_folder_dataset_layouts_and_limit(tmp_path):
    from genlab.data.datasets import load_split
    from genlab.schema import DataConfig

    root = tmp_path / "own"
    for i in range(5):
        save(root / f"{i}.png", colour=(40 * i, 0, 0))
    (root / "9_broken.png").write_bytes(b"not an image")  # sorted last
    data = DataConfig(name="folder", root=str(root), image_size=16, channels=3)
    assert len(load_split(dataclasses.replace(data, limit=4), "train")) == 4  # the broken file is never decoded
    with pytest.raises(ImageDecodeError, match="9_broken.png"):
        load_split(data, "train")
    (root / "9_broken.png").unlink()
    save(root / "test" / "t.png")  # test/ without train/: refused, not trained on with the rest
    with pytest.raises(DataError, match="has test/ but no train/"):
        load_split(data, "train")
    with pytest.raises(DataError, match="no such folder"):
        load_split(dataclasses.replace(data, root=str(tmp_path / "moved")), "test")
