"""core/tasks/images/data.py: CIFAR-10 archives read in place, image folders, decoding limits, subsets."""
import io

import pytest
import torch
from PIL import Image

from core.tasks.images.data import (CIFAR10_CLASSES, balanced_subset, decode_image, load_image_folder, load_images,
                              split_train_val)
from core.errors import BadInputError, BadSettingError, DataNotFoundError


def _png(mode, size, color):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_cifar10_test_split_is_read_in_place(data_dir):
    test = load_images("test", data_dir)
    assert test.images.shape == (10_000, 3, 32, 32) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes == CIFAR10_CLASSES
    assert test.ids[0].startswith("test/airplane/")


def test_balanced_subset_and_validation_split():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = balanced_subset(labels, 15, seed=1)
    assert torch.bincount(labels[idx]).tolist() == [5, 5, 5]
    idx = balanced_subset(labels, 40, seed=1)  # class 2 runs out: the others fill in
    assert torch.bincount(labels[idx]).tolist() == [18, 17, 5]
    assert torch.equal(balanced_subset(labels, 40, seed=1), idx)
    train, val = split_train_val(labels, 0.2, seed=0)
    assert len(val) == 17 and len(set(train.tolist()) & set(val.tolist())) == 0
    with pytest.raises(BadSettingError):
        balanced_subset(labels, 0)


def test_decode_any_mode_and_size():
    rgba = decode_image(_png("RGBA", (64, 40), (255, 0, 0, 0)), size=32)  # fully transparent -> white
    assert rgba.shape == (3, 32, 32) and rgba.min() == 255
    gray = decode_image(_png("L", (10, 10), 77))
    assert gray.shape == (3, 10, 10) and gray.unique().tolist() == [77]


def test_bad_images_are_one_sentence():
    with pytest.raises(BadInputError, match="empty"):
        decode_image(b"")
    with pytest.raises(BadInputError, match="not a readable image"):
        decode_image(b"GIF89a garbage")
    huge = _png("1", (10_000, 9_000), 0)  # 90 MP, tiny file: a decompression bomb
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(BadInputError, match="10000x9000 pixels"):
        decode_image(huge)


def test_image_folder_skips_unreadable_files(tmp_path):
    for cls, color in (("cats", (10, 10, 10)), ("dogs", (200, 200, 200))):
        d = tmp_path / "train" / cls
        d.mkdir(parents=True)
        (d / "a.png").write_bytes(_png("RGB", (50, 30), color))
        (d / "b.jpg").write_bytes(b"broken")
    split = load_image_folder(tmp_path, "train", size=16)
    assert split.classes == ("cats", "dogs") and split.images.shape == (2, 3, 16, 16)
    assert "2 unreadable files skipped" in split.source
    with pytest.raises(DataNotFoundError):
        load_image_folder(tmp_path, "test")


def test_cifar_cache_writers_never_share_a_temporary_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    """Two loads of the same split at once (two jobs) both decode, each writes its own temporary, and both get the
    whole split; a truncated cache file is decoded again and replaced, not an error."""
    import threading

    import numpy as np

    from core.tasks.images import data

    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "data" / "cifar10" / data.CIFAR10_ARCHIVES["test"]).write_bytes(b"stand-in archive")
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    both_decoding = threading.Barrier(2, timeout=30)
    decoded = []

    def decode(archive):
        decoded.append(archive)
        if len(decoded) <= 2:
            both_decoding.wait()  # the two loads overlap: neither has written the cache yet
        rng = np.random.default_rng(0)
        return rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), np.arange(6) % 3, [f"img{i}" for i in range(6)]

    monkeypatch.setattr(data, "_decode_cifar_archive", decode)
    results, errors = [], []

    def load():
        try:
            results.append(data.load_cifar10("test", tmp_path / "data"))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2 and len(decoded) == 2
    for split in results:
        assert split.images.shape == (6, 32, 32, 3) and split.ids == [f"img{i}" for i in range(6)]
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # one cache file, no temporary left behind
    assert data.load_cifar10("test", tmp_path / "data").ids == results[0].ids and len(decoded) == 2  # read, not decoded

    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated
    again = data.load_cifar10("test", tmp_path / "data")
    assert len(decoded) == 3 and torch.equal(again.images, results[0].images)
    assert data.load_cifar10("test", tmp_path / "data").ids == again.ids and len(decoded) == 3  # the file was replaced


def test_first_image_per_class_comes_from_its_own_small_cache(tmp_path, monkeypatch):
    """The app's gallery reads ten images from a small cache file, not the whole decoded test split: after the
    first call the split is not loaded again, the images equal the split's first image of each class, and a
    truncated file is made again."""
    import numpy as np

    from core.tasks.images import data

    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    (tmp_path / "data" / "cifar10" / data.CIFAR10_ARCHIVES["test"]).write_bytes(b"stand-in archive")
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (30, 3, 32, 32), dtype=np.uint8)
    labels = np.array([(i * 7) % 10 for i in range(30)])
    monkeypatch.setattr(data, "_decode_cifar_archive", lambda archive: (images, labels, [f"i{n:02d}" for n in range(30)]))
    loads = []
    real_load = data.load_images
    monkeypatch.setattr(data, "load_images", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    data._test_split_index.cache_clear()

    first = data.first_test_image_per_class(tmp_path / "data")
    assert [name for name, _ in first] == list(CIFAR10_CLASSES) and len(loads) == 1
    for c, (name, image) in enumerate(first):
        assert np.array_equal(image, images[int(np.flatnonzero(labels == c)[0])].transpose(1, 2, 0))
    small = next((tmp_path / "cache").glob("cifar10_test_firsts_*.npz"))
    assert small.stat().st_size < 100_000

    data._test_split_index.cache_clear()  # a new process: the split is not in memory
    again = data.first_test_image_per_class(tmp_path / "data", ("cat", "dog", "unicorn"))
    assert [n for n, _ in again] == ["cat", "dog"] and len(loads) == 1  # from the small file, the split not read
    assert np.array_equal(again[0][1], dict(first)["cat"])

    small.write_bytes(small.read_bytes()[:200])  # truncated
    data._test_split_index.cache_clear()
    rebuilt = data.first_test_image_per_class(tmp_path / "data")
    assert len(loads) == 2 and all(np.array_equal(a, b) for (_, a), (_, b) in zip(rebuilt, first))
    data._test_split_index.cache_clear()
