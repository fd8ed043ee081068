"""Image classification data: CIFAR-10 (local tar.gz read in place, or the Hub), or any ``<split>/<class>/*`` folder.

Every loader returns an :class:`ImageSplit`: uint8 images (N, 3, H, W) in memory, integer labels, class names
and one id per image. Resizing to the backbone's input size and normalisation happen per batch inside the model
(``ImageClassifier.preprocess``), so a 32x32 CIFAR-10 image is stored once at 32x32.

>>> test = load_images("test", data_dir="../shared/datasets")   # doctest: +SKIP
>>> test.images.shape, test.classes[:2]                          # doctest: +SKIP
(torch.Size([10000, 3, 32, 32]), ('airplane', 'automobile'))
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import secrets
import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import BadInputError, BadSettingError, DataNotFoundError
from core.paths import cache_dir, data_dir as resolve_data_dir
from core.tasks.images import CIFAR10_CLASSES

if TYPE_CHECKING:
    import torch  # imported inside the functions that make tensors: importing this module stays torch-free

CIFAR10_ARCHIVES = {"train": "cifar10_train_jpeg.tar.gz", "test": "cifar10_test_jpeg.tar.gz"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 80_000_000  # about 9000 x 9000: beyond this PIL's decompression-bomb guard is a real risk
FOLDER_IMAGE_SIZE = 224  # images of a generic folder are stored at this square size


@dataclass
class ImageSplit:
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    ids: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "ImageSplit":
        idx = index.tolist()
        return ImageSplit(self.images[index], self.labels[index], self.classes, [self.ids[i] for i in idx],
                          self.source)


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of an image file, read only when it is a regular file within MAX_IMAGE_BYTES (checked with
    ``os.stat`` first, and the read itself bounded): a device such as /dev/zero or a FIFO is refused, never read.

    >>> read_image_file("/dev/zero")   # doctest: +SKIP
    BadInputError: That is not an image file.
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        raise BadInputError("The uploaded image could not be read; upload it again.") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError("That is not an image file.")
    if info.st_size > MAX_IMAGE_BYTES:
        raise BadInputError(f"The image is {info.st_size / 2**20:.0f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB.")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)  # bounded even if the file grew after the stat
    except OSError:
        raise BadInputError("The uploaded image could not be read; upload it again.") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise BadInputError(f"The image is over the {MAX_IMAGE_BYTES // 2**20} MB limit.")
    return data


def decode_image(data: bytes, size: int | None = None) -> torch.Tensor:
    """Decode any image (RGBA, grayscale, palette, huge) to a uint8 (3, H, W) tensor, optionally square-resized.

    Raises BadInputError with one sentence for empty, corrupt or oversized input.
    >>> decode_image(open("assets/images/cat.png", "rb").read(), size=32).shape   # doctest: +SKIP
    torch.Size([3, 32, 32])
    """
    import torch

    if not data:
        raise BadInputError("The image is empty.")
    if len(data) > MAX_IMAGE_BYTES:
        raise BadInputError(f"The image is {len(data) / 2**20:.0f} MB; the limit is {MAX_IMAGE_BYTES // 2**20} MB.")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise BadInputError(
                    f"The image is {img.width}x{img.height} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels."
                )
            img.draft("RGB", (size * 4, size * 4) if size else None)  # JPEG: decode at a reduced scale when huge
            rgb = _to_rgb(img)
            if size is not None:
                rgb = _center_square(rgb).resize((size, size), Image.BILINEAR)
            arr = np.asarray(rgb, dtype=np.uint8)
    except BadInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BadInputError("The file is not a readable image (a PNG, JPEG, GIF, BMP or WebP file).") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))  # transparent pixels become white
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def _center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 from the shared tar.gz archives
# ---------------------------------------------------------------------------------------------------------------
def _cifar_archive(split: str, root: Path) -> Path:
    if split not in CIFAR10_ARCHIVES:
        raise BadSettingError(f"CIFAR-10 has the splits train and test, not '{split}'.")
    path = root / "cifar10" / CIFAR10_ARCHIVES[split]
    if not path.is_file():
        raise DataNotFoundError(f"CIFAR-10 {split} archive not found at {path}.")
    return path


def _archive_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def load_cifar10(split: str, data_dir: str | os.PathLike | None = None) -> ImageSplit:
    """CIFAR-10 ``split`` from ``<data_dir>/cifar10/*.tar.gz``, decoded once and cached as .npy in the cache dir."""
    import torch

    archive = _cifar_archive(split, resolve_data_dir(data_dir))
    cached = cache_dir() / f"cifar10_{split}_{_archive_key(archive)}.npz"
    found = _read_cifar_cache(cached)
    if found is not None:
        images, labels, ids = found
    else:
        images, labels, ids = _decode_cifar_archive(archive)
        _write_npz_atomic(cached, images=images, labels=labels, ids=np.array(ids))
    return ImageSplit(torch.from_numpy(images), torch.from_numpy(labels).long(), CIFAR10_CLASSES, ids,
                      f"local:{archive}")


def _read_cifar_cache(cached: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """The decoded split from its cache file, or None when there is none or it is unreadable (a truncated file
    from a full disk, say: the archive is decoded again and the file replaced)."""
    if not cached.is_file():
        return None
    try:
        with open(cached, "rb") as f, np.load(f, allow_pickle=False) as z:  # our handle: closed on a bad file too
            return z["images"], z["labels"], [str(s) for s in z["ids"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write_npz_atomic(cached: Path, **arrays: np.ndarray) -> None:
    """Write a cache file under a temporary name of this writer's own and rename it into place: two processes
    or threads decoding the same split at once (two jobs, the app and a CLI run) each write their own temporary,
    and whichever renames last leaves the same complete file; a reader never sees a partial one."""
    tmp = cached.with_name(f".{cached.stem}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, cached)
    finally:
        tmp.unlink(missing_ok=True)


def _decode_cifar_archive(archive: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    class_index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    entries: list[tuple[str, int, np.ndarray]] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-2] not in class_index:
                continue
            data = tar.extractfile(member).read()
            entries.append((member.name, class_index[parts[-2]], decode_image(data).numpy()))
    if not entries:
        raise DataNotFoundError(f"No CIFAR-10 images found inside {archive}.")
    entries.sort(key=lambda e: e[0])
    images = np.stack([e[2] for e in entries])  # (N, 3, 32, 32)
    labels = np.array([e[1] for e in entries], dtype=np.int64)
    return images, labels, [e[0] for e in entries]


# ---------------------------------------------------------------------------------------------------------------
# A generic <root>/<split>/<class>/* folder
# ---------------------------------------------------------------------------------------------------------------
def load_image_folder(root: str | os.PathLike, split: str, size: int = FOLDER_IMAGE_SIZE) -> ImageSplit:
    """Images under ``<root>/<split>/<class>/``; class names are the sorted sub-folder names.

    Unreadable files are skipped and counted in ``source`` rather than failing the whole split.
    """
    import torch

    base = Path(root) / split
    if not base.is_dir():
        raise DataNotFoundError(f"Image folder {base} does not exist (expected <root>/<split>/<class>/*).")
    classes = tuple(sorted(d.name for d in base.iterdir() if d.is_dir()))
    if not classes:
        raise DataNotFoundError(f"Image folder {base} has no class sub-folders.")
    images, labels, ids, skipped = [], [], [], 0
    for ci, cls in enumerate(classes):
        for f in sorted((base / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                images.append(decode_image(f.read_bytes(), size=size))
            except BadInputError:
                skipped += 1
                continue
            labels.append(ci)
            ids.append(f"{split}/{cls}/{f.name}")
    if not images:
        raise DataNotFoundError(f"No readable images under {base}.")
    note = f" ({skipped} unreadable files skipped)" if skipped else ""
    return ImageSplit(torch.stack(images), torch.tensor(labels), classes, ids, f"folder:{base}{note}")


CIFAR10_HUB_ID = "uoft-cs/cifar10"


def load_cifar10_hub(split: str) -> ImageSplit:
    """CIFAR-10 from the Hugging Face Hub (uoft-cs/cifar10) through ``datasets``: internet, or (HF_HUB_OFFLINE=1)
    the prepared copy a previous online load left in the datasets cache."""
    import torch

    try:
        import datasets

        ds = datasets.load_dataset(CIFAR10_HUB_ID, split=split)
    except Exception as err:
        raise DataNotFoundError(f"Could not load CIFAR-10 from the Hub: {err}") from err
    # Label ids index CIFAR10_CLASSES everywhere (heads, confusion matrices): a copy with another order is refused.
    names = getattr(ds.features.get("label"), "names", None)
    if names is not None and tuple(names) != CIFAR10_CLASSES:
        raise DataNotFoundError(f"The Hub copy {CIFAR10_HUB_ID} names its classes {', '.join(names)}, not "
                                f"{', '.join(CIFAR10_CLASSES)} in that order.")
    # np.array (a copy): the decoded PIL buffer is read-only, which torch.from_numpy warns about.
    images = torch.stack([torch.from_numpy(np.array(im.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)
                          for im in ds["img"]])
    return ImageSplit(images, torch.tensor(list(ds["label"]), dtype=torch.long), CIFAR10_CLASSES,
                      [f"{split}/{i:05d}" for i in range(len(ds))], f"hub:{CIFAR10_HUB_ID}")


def load_images(split: str, data_dir: str | os.PathLike | None = None) -> ImageSplit:
    """The one entry point: CIFAR-10 archives if ``data_dir`` holds them, a ``<split>/<class>`` folder if it is
    one, the Hub when no local data exists and the Hub answers."""
    root = resolve_data_dir(data_dir)
    if (root / "cifar10").is_dir():
        return load_cifar10(split, root)
    if (root / split).is_dir():
        return load_image_folder(root, split)
    if data_dir is None:
        from core.weights import hub_available

        if hub_available():
            return load_cifar10_hub(split)
    raise DataNotFoundError(
        f"No image data at {root}: expected cifar10/*.tar.gz or a {split}/<class>/ folder there."
    )


def balanced_subset(labels: torch.Tensor, limit: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of at most ``limit`` examples, as equal per class as possible, in a seeded order.

    >>> import torch
    >>> balanced_subset(torch.tensor([0, 0, 0, 1, 1, 1]), 4).tolist().__len__()
    4
    """
    import torch

    n = len(labels)
    if limit is None or limit >= n:
        return torch.arange(n)
    if limit <= 0:
        raise BadSettingError("A data limit must be a positive number of examples.")
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class]
    # Round-robin over classes so the first ``limit`` picks are balanced; classes that run out drop out.
    picked: list[int] = []
    depth = 0
    while len(picked) < limit:
        for idx in per_class:
            if depth < len(idx) and len(picked) < limit:
                picked.append(int(idx[depth]))
        depth += 1
    return torch.tensor(sorted(picked))


def split_train_val(labels: torch.Tensor, val_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-stratified (train_idx, val_idx) of a training split."""
    import torch

    if not 0 <= val_fraction < 1:
        raise BadSettingError("The validation fraction must be at least 0 and below 1.")
    n_val = int(round(len(labels) * val_fraction))
    if n_val == 0:
        return torch.arange(len(labels)), torch.arange(0)
    val = balanced_subset(labels, n_val, seed + 1)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val


SPLITS = ("train", "test")


def statistics(split: ImageSplit) -> dict:
    """Images per class, the image size and where the split came from.

    >>> statistics(load_images("test"))["per_class"]["cat"]   # doctest: +SKIP
    1000
    """
    import torch

    counts = torch.bincount(split.labels, minlength=len(split.classes)).tolist() if len(split) else [0] * len(
        split.classes)
    return {"n": len(split), "per_class": dict(zip(split.classes, counts)),
            "image_size": list(split.images.shape[2:]) if len(split) else None, "source": split.source}


def load_examples(split: str, data_dir: str | os.PathLike | None = None,
                  data_file: str | os.PathLike | None = None) -> ImageSplit:
    """One split as the task registry asks for it (``TaskSpec.load_examples``): an image folder given as
    ``data_file`` (``<folder>/<split>/<class>/*``), else :func:`load_images`."""
    if data_file is not None:
        return load_image_folder(data_file, split)
    return load_images(split, data_dir)


@functools.lru_cache(maxsize=2)
def _test_split_index(data_dir: str | None) -> tuple[ImageSplit, dict[str, int]]:
    split = load_images("test", data_dir)
    return split, {str(i): n for n, i in enumerate(split.ids)}


def test_images(ids, data_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """The test images with these ids (as prediction rows name them), (H, W, 3) uint8 each; the split is decoded
    once per data folder. DataNotFoundError names an id the folder does not hold."""
    split, row_of = _test_split_index(None if data_dir is None else str(data_dir))
    out = []
    for i in ids:
        n = row_of.get(str(i))
        if n is None:
            raise DataNotFoundError(f"Test image {i} is not in the data folder {resolve_data_dir(data_dir)}.")
        out.append(split.images[n].permute(1, 2, 0).numpy())  # (3, H, W) -> (H, W, 3)
    return out


def first_test_image_per_class(data_dir: str | os.PathLike | None = None,
                               classes: tuple[str, ...] | None = None) -> list[tuple[str, np.ndarray]]:
    """(class, (H, W, 3) uint8 image) for the first test image of each class (all classes by default), from the
    local data folder only (never a download): the app's example images.

    For the CIFAR-10 archives the ten images are kept in a small cache file of their own (30 KB, keyed like the
    split's cache): the app's first page then reads that file instead of the whole decoded test split (30 MB)
    and never imports torch for its gallery."""
    root = resolve_data_dir(data_dir)
    firsts = _cifar_firsts(root) if (root / "cifar10").is_dir() else None
    if firsts is None:
        firsts = _firsts_of(root)
    return [(name, firsts[name]) for name in classes or tuple(firsts) if name in firsts]


def _firsts_of(root: Path) -> dict[str, np.ndarray]:
    """{class: its first test image (H, W, 3)} in class order, for the classes that have one, from the decoded
    test split (decoded once per data folder)."""
    split, _ = _test_split_index(str(root))
    labels, images = split.labels.numpy(), split.images.numpy()
    out = {}
    for c, name in enumerate(split.classes):
        hits = np.flatnonzero(labels == c)
        if len(hits):
            out[name] = np.ascontiguousarray(images[int(hits[0])].transpose(1, 2, 0))
    return out


def _cifar_firsts(root: Path) -> dict[str, np.ndarray]:
    archive = _cifar_archive("test", root)
    cached = cache_dir() / f"cifar10_test_firsts_{_archive_key(archive)}.npz"
    if cached.is_file():
        try:
            with open(cached, "rb") as f, np.load(f, allow_pickle=False) as z:
                names, images = [str(n) for n in z["classes"]], z["images"]
            if len(names) == len(images) and set(names) <= set(CIFAR10_CLASSES):
                return dict(zip(names, images))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable (a truncated file): made again below
    firsts = _firsts_of(root)
    _write_npz_atomic(cached, classes=np.array(list(firsts)), images=np.stack(list(firsts.values())))
    return firsts


def hub_dataset() -> dict:
    """CIFAR-10's Hub copy for ``python -m core prefetch`` (see core/tasks/tweets/data.py)."""
    return {"hub_id": CIFAR10_HUB_ID, "hub_splits": ("train", "test"), "loader_splits": ("train", "test"),
            "load": load_cifar10_hub}
