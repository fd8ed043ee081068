"""The Images tab's example gallery: one CIFAR-10 test image per class, upscaled 4x with nearest-neighbour,
captioned with its true label, and a selection that gives back the original image file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import BadInputError, DataNotFoundError
from core.tasks.images import CIFAR10_CLASSES
from core.tasks.images.data import first_test_image_per_class
from demo import gallery


@pytest.fixture
def examples(data_dir):
    return gallery.class_examples(str(data_dir))


def test_every_class_once_in_class_order_with_its_true_label(data_dir, examples):
    value = gallery.gallery_value(str(data_dir))
    assert [caption for _, caption in value] == list(CIFAR10_CLASSES)
    assert all(thumb.shape == (gallery.THUMBNAIL_PX, gallery.THUMBNAIL_PX, 3) and thumb.dtype == np.uint8
               for thumb, _ in value)


def test_thumbnails_are_nearest_neighbour_copies_of_the_first_test_image(data_dir, examples):
    originals = dict(first_test_image_per_class(data_dir))
    for e in examples:
        original = originals[e.label]
        assert np.array_equal(e.thumbnail, original.repeat(4, axis=0).repeat(4, axis=1))  # 32 px -> 128 px blocks


def test_a_selection_gives_the_original_image_and_its_label(data_dir, examples):
    index = CIFAR10_CLASSES.index("cat")
    path, label = gallery.selected_example(index, str(data_dir))
    assert label == "cat"
    with Image.open(path) as img:
        assert img.size == (32, 32)
        assert np.array_equal(np.asarray(img.convert("RGB")), dict(first_test_image_per_class(data_dir))["cat"])
    assert gallery.example_folder(str(data_dir)) == type(gallery.example_folder(str(data_dir)))(path).parent


@pytest.mark.parametrize("index", [-1, 10, None, "3", True])
def test_a_selection_outside_the_gallery_is_one_sentence(data_dir, examples, index):
    with pytest.raises(BadInputError, match="^Pick one of the example images.$"):
        gallery.selected_example(index, str(data_dir))


def test_no_data_folder_is_the_loaders_sentence(tmp_path):
    with pytest.raises(DataNotFoundError, match=f"No image data at {tmp_path}"):
        gallery.gallery_value(str(tmp_path))


def test_upscale_keeps_the_aspect_ratio():
    wide = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    out = gallery.upscale(wide, 8)
    assert out.shape == (4, 8, 3) and np.array_equal(out[::2, ::2], wide)


def test_a_gradio_gallery_takes_the_value(data_dir, examples):
    gr = pytest.importorskip("gradio")

    data = gr.Gallery().postprocess(gallery.gallery_value(str(data_dir)))
    assert [item.caption for item in data.root] == list(CIFAR10_CLASSES)
