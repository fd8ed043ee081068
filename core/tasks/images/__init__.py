"""Image classification: CIFAR-10 (or any ``<split>/<class>/`` image folder) with timm CNNs and vision
transformers, the course's paper head, the frozen-feature cache and a linear SVM on frozen features.

``data.py`` loads and decodes images; ``models.py`` builds and registers the image models; ``task.py`` is the
engine adapter (with the frozen-feature cache); ``rows.py`` the prediction row; ``svm.py`` the SVM run;
``presets.py`` the course's image experiments.
"""
from core.registry import InputField, TaskSpec, register_task

NAME = "images"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

SPEC = register_task(TaskSpec(
    name=NAME,
    title="CIFAR-10 images",
    description="Classify an image into the ten CIFAR-10 classes: CNNs against vision transformers.",
    labels=CIFAR10_CLASSES,
    num_outputs=len(CIFAR10_CLASSES),
    headline="accuracy",
    monitor="accuracy",
    inputs=(InputField("image", "image", "an image file (any size; it is resized for the model)"),),
    head_words="classification head",
    adapter="ImageTask",
    row="ImageRow",
    image_inputs=True,
    order=1,
))
