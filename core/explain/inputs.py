"""One input encoded the way each task's prediction encodes it, plus what explanations need besides the tensors
(the token strings, which positions are special, the image at the model's input size), and the notes every
explanation carries about the weights it explains.

The encodings follow ``TweetTask.predict_text`` (cleaned, trimmed to the real length), ``QATask.answer``
(``make_split`` windows; the window holding the answer) and ``ImageTask.predict_image`` (``decode_image`` to the
model's input size, then ``model.preprocess``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.errors import BadInputError, BadSettingError

if TYPE_CHECKING:
    import torch

_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TextInput:
    """One encoded text (1, T) without padding; ``special[i]`` marks [CLS]/[SEP]/<s>/</s>."""

    tensors: dict[str, torch.Tensor]
    tokens: list[str]
    special: list[bool]
    pad_id: int
    target: list[int] = field(default_factory=list)  # QA: [start, end] token positions
    target_name: str = ""
    notes: list[str] = field(default_factory=list)

    def baseline_ids(self) -> torch.Tensor:
        """(1, T) the input with every non-special token replaced by the padding token."""
        import torch

        ids = self.tensors["input_ids"]
        keep = torch.tensor(self.special, dtype=torch.bool, device=ids.device)[None]
        return torch.where(keep, ids, torch.full_like(ids, self.pad_id))


def _tokens_and_special(tokenizer, ids: torch.Tensor) -> tuple[list[str], list[bool]]:
    id_list = [int(i) for i in ids[0]]
    special_ids = set(tokenizer.all_special_ids)
    return [str(t) for t in tokenizer.convert_ids_to_tokens(id_list)], [i in special_ids for i in id_list]


def _pad_id(tokenizer, model) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(model.encoder.config, "pad_token_id", None)
    return int(pad or 0)


def encoder_kwargs(model, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments ``model.encoder`` takes for these tensors (segment ids only where it reads them)."""
    kwargs = {"input_ids": tensors["input_ids"], "attention_mask": tensors["attention_mask"]}
    reads_segments = getattr(model, "uses_token_types", True)
    if "token_type_ids" in tensors and reads_segments:
        kwargs["token_type_ids"] = tensors["token_type_ids"]
    return kwargs


def encode_tweet(task_run, text: str) -> TextInput:
    """A tweet as ``predict_text`` encodes it."""
    from core.tasks.tweets.data import clean_tweet, encode_tweets

    cleaned = clean_tweet(text)  # BadInputError for empty text
    tokenizer = task_run.tokenizer()
    enc = encode_tweets([cleaned], tokenizer, max_length=task_run.max_length, clean=False)
    t = int(enc["attention_mask"].sum())
    tensors = {k: enc[k][:, :t].to(task_run.device) for k in _INPUT_KEYS if k in enc}
    tokens, special = _tokens_and_special(tokenizer, tensors["input_ids"])
    return TextInput(tensors, tokens, special, _pad_id(tokenizer, task_run.model))


def _span_tokens(offsets: list, start_char: int, end_char: int) -> tuple[int, int] | None:
    """(first, last) passage token covering [start_char, end_char) in one window's offsets, or None."""
    first = last = None
    for i, span in enumerate(offsets):
        if span is None:
            continue
        a, b = span
        if first is None and a <= start_char < b:
            first = i
        if a < end_char <= b:
            last = i
    if first is None or last is None or last < first:
        return None
    return first, last


def encode_question(task_run, question: str, context: str, max_length: int | None = None,
                    stride: int | None = None) -> TextInput:
    """The window of (question, passage) that holds the model's answer, with the answer's token span as target.

    The answer is what ``task_run.answer`` decodes (its best span even when it abstains); when no window holds
    it whole (or there is none) the target is the [CLS] position, i.e. the "no answer" score.
    """
    from core.tasks.qa.data import QAExample
    from core.tasks.qa.task import make_split

    answer = task_run.answer(question, context)  # BadInputError for an empty question or passage
    tokenizer = task_run.tokenizer()
    length = int(max_length or task_run.max_length)
    stride = int(stride if stride is not None else task_run.cfg.doc_stride)
    if stride >= length:
        raise BadSettingError(f"The window overlap ({stride}) must be shorter than the window ({length} tokens).")
    split = make_split([QAExample("question", "", context, question, (), True)], tokenizer, length, stride,
                       "explanation")
    notes = []
    if answer["has_answer"]:
        text, start_char = answer["answer"], answer["start_char"]
    elif answer["alternatives"]:
        best = answer["alternatives"][0]
        text, start_char = best["text"], best["start_char"]
        notes.append(f"The model abstains (no-answer probability {answer['no_answer_probability']:.2f}); this "
                     f"explains its best span instead.")
    else:
        text, start_char = "", -1
    window, span = 0, None
    if text:
        for w in range(len(split)):
            span = _span_tokens(split.offsets[w], start_char, start_char + len(text))
            if span is not None:
                window = w
                break
    if span is None:
        cls = split.cls_index[window]
        span = (cls, cls)
        notes.append("No window holds an answer span, so this explains the no-answer score at [CLS].")
        text = ""
    t = int(split.lengths[window])
    tensors = {k: split.windows[k][window:window + 1, :t].to(task_run.device) for k in _INPUT_KEYS
               if k in split.windows}
    if len(split) > 1:
        notes.append(f"The passage needs {len(split)} windows; this explains window {window + 1}, which holds the "
                     "answer.")
    tokens, special = _tokens_and_special(tokenizer, tensors["input_ids"])
    return TextInput(tensors, tokens, special, _pad_id(tokenizer, task_run.model), target=list(span),
                     target_name=text or "(no answer)", notes=notes)


def encode_image(task_run, image) -> torch.Tensor:
    """(1, 3, S, S) uint8 at the model's input size, from encoded bytes or an (H, W, 3) uint8 array."""
    import torch

    from core.tasks.images.data import decode_image

    size = task_run.model.input_size
    if isinstance(image, (bytes, bytearray)):
        return decode_image(bytes(image), size=size)[None]
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise BadInputError("The image must be encoded bytes or an (H, W, 3) uint8 array.")
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def weights_notes(task_run, fine_tuned: bool | None) -> list[str]:
    """Sentences about what the explained weights are: random, pretrained with an untrained head, or trained.

    ``fine_tuned``: True for a run trained here, False for a registry model as built, None when unknown.
    """
    from core.weights import head_is_trained

    model, spec = task_run.model, task_run.spec
    weights = getattr(model, "weights", None)
    pretrained = bool(weights is not None and weights.pretrained)
    if fine_tuned:
        return [] if pretrained else ["This run was trained from random weights (no pretraining)."]
    if not pretrained:
        if fine_tuned is None:
            return ["The model's weights are random (untrained): unless this run was fine-tuned, this map explains "
                    "random weights."]
        return ["This map explains random weights: the model is untrained (no pretrained weights here, and no run "
                "fine-tuned it)."]
    if fine_tuned is False and spec is not None and not head_is_trained(spec, weights):
        return ["The pretrained part is real but the task head is untrained (random), so this explains a random "
                "readout of pretrained features."]
    return []


def input_kind(task) -> str:
    """What a task's prediction reads, from its TaskSpec (a TaskSpec or a task name): "image", "span" (a question
    and a passage, answered with a span: extractive QA) or "text" (one text, classified). Methods pick their
    recipe from this declaration, never from the task's name."""
    from core import registry

    spec = task if isinstance(task, registry.TaskSpec) else registry.get_task(task)
    if spec.image_inputs:
        return "image"
    return "span" if spec.labels is None else "text"
