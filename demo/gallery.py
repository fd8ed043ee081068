"""Example thumbnails for the Images tab: the first CIFAR-10 test image of every class, for a ``gr.Gallery``.

A 32x32 image is tiny on screen, so each thumbnail is upscaled with nearest-neighbour (every pixel a crisp
square, no invented detail) to 128 px; the caption is the true label. Picking a thumbnail should feed the
*original* test image to the models, not the upscaled copy (which a model would resize again from blocks), so
the originals are written once per process as PNGs to a temporary folder (removed at exit, never the repository)
and :func:`selected_example` maps a gallery selection to that file and its true label.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import BadInputError
from core.tasks.images.data import first_test_image_per_class

THUMBNAIL_PX = 128


@dataclass(frozen=True)
class Example:
    label: str  # the true class
    path: str  # the original test image as a PNG, what the models should read
    thumbnail: np.ndarray  # (THUMBNAIL_PX, THUMBNAIL_PX, 3) uint8, nearest-neighbour upscaled


def upscale(image: np.ndarray, size: int = THUMBNAIL_PX) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with its longer side made ``size`` px by nearest-neighbour.

    >>> upscale(np.zeros((32, 16, 3), np.uint8)).shape
    (128, 64, 3)
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.NEAREST)
    return np.asarray(resized)


def class_examples(data_dir: str | None = None) -> tuple[Example, ...]:
    """One example per class, in the class order, from the local data folder only (never the Hub); the loader's
    DataNotFoundError (one sentence) when the folder holds no CIFAR-10 test images. Written once per process and
    folder (``class_examples()`` and ``class_examples(None)`` are the same call)."""
    return _class_examples(data_dir)


@functools.lru_cache(maxsize=2)
def _class_examples(data_dir: str | None) -> tuple[Example, ...]:
    found = first_test_image_per_class(data_dir)
    folder = Path(tempfile.mkdtemp(prefix="transfer_lab_gallery_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    examples = []
    for label, array in found:
        path = folder / f"cifar10_test_{label}.png"
        Image.fromarray(array).save(path)
        examples.append(Example(label, str(path), upscale(array)))
    return tuple(examples)


def example_folder(data_dir: str | None = None) -> Path | None:
    """The folder holding the originals (an upload check must accept paths in it); None without examples."""
    examples = class_examples(data_dir)
    return Path(examples[0].path).parent if examples else None


def gallery_value(data_dir: str | None = None) -> list[tuple[np.ndarray, str]]:
    """(thumbnail, true label) per class: the value of a ``gr.Gallery``."""
    return [(e.thumbnail, e.label) for e in class_examples(data_dir)]


def selected_example(index, data_dir: str | None = None) -> tuple[str, str]:
    """(original image path, true label) of the thumbnail at ``index`` (``gr.SelectData.index``)."""
    examples = class_examples(data_dir)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(examples):
        raise BadInputError("Pick one of the example images.")
    e = examples[index]
    return e.path, e.label
