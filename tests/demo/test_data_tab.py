"""The Data tab's handler on the real data sets in ../shared/datasets: a table with every split, figures with the
right traces, the counts the data sets' READMEs state, and one sentence when the data folder is missing."""
from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from core import registry  # noqa: E402
from demo import data_tab  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_cache():
    data_tab.clear_cache()
    yield
    data_tab.clear_cache()


def _rows(view) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in view.rows}


@pytest.mark.parametrize("task", registry.task_names())
def test_every_task_has_a_table_with_every_split_and_a_bar_per_split(task, data_dir):
    splits = list(registry.get_task(task).splits())
    view = data_tab.data_view(task, data_dir)
    assert view.headers == ["statistic", *splits]
    assert view.rows and all(len(row) == len(splits) + 1 for row in view.rows)
    assert all(value != "-" for row in view.rows for value in row[1:]), "a statistic is missing in some split"
    assert [(t.type, t.name) for t in view.counts.data] == [("bar", s) for s in splits]
    for split in splits:
        assert split in view.message


def test_cifar_class_balance_is_ten_bars_per_split_and_no_lengths(data_dir):
    view = data_tab.data_view("images", data_dir)
    train, test = view.counts.data
    assert list(train.x) == list(registry.get_task("images").labels)
    assert list(train.y) == [5000] * 10 and list(test.y) == [1000] * 10
    assert list(train.customdata) == ["10.0% of train"] * 10
    rows = _rows(view)
    assert rows["examples"] == ["50,000", "10,000"] and rows["per class · cat"] == ["5,000", "1,000"]
    assert rows["image size"] == ["32 × 32", "32 × 32"]
    assert view.lengths is None  # images carry no lengths: no empty figure is drawn


def test_tweets_label_balance_and_boxes_from_the_percentiles(data_dir):
    view = data_tab.data_view("tweets", data_dir)
    by_split = {t.name: dict(zip(t.x, t.y)) for t in view.counts.data}
    assert by_split == {"train": {"fake": 3060, "real": 3360}, "val": {"fake": 1020, "real": 1120},
                        "test": {"fake": 1020, "real": 1120}}
    stats = data_tab.split_statistics("tweets", data_dir)
    boxes = view.lengths.data
    assert [(b.type, b.name) for b in boxes] == [("box", "train"), ("box", "val"), ("box", "test")]
    for box in boxes:
        words = stats[box.name]["words"]
        assert (box.q1[0], box.median[0], box.q3[0]) == tuple(words["percentiles"][p] for p in ("25", "50", "75"))
        assert (box.lowerfence[0], box.upperfence[0]) == (words["percentiles"]["5"], words["percentiles"]["95"])
        assert box.mean[0] == pytest.approx(words["mean"])
    assert "5th and 95th percentiles" in view.lengths.layout.title.text
    assert _rows(view)["words · max"] == ["1,456", "304", "1,484"]


def test_pquad_counts_and_word_ranges_shown_as_summaries(data_dir):
    view = data_tab.data_view("qa", data_dir)
    rows = _rows(view)
    # ../shared/SEED_EXPERIMENTS.md: 1,981 / 1,914 unanswerable of 7,976 / 8,002 questions
    assert rows["questions"] == ["7,976", "8,002"]
    assert rows["unanswerable"] == ["1,981", "1,914"]
    assert rows["answerable percent"] == ["75.16", "76.08"]
    validation = view.counts.data[0]
    assert dict(zip(validation.x, validation.y))["answerable"] == 7976 - 1981
    # only min/mean/max are computed for QA: a mean with its range per split, never a made-up box
    panels = view.lengths.layout.annotations
    assert [a.text for a in panels] == ["context words", "question words", "answer words"]
    traces = view.lengths.data
    assert {t.type for t in traces} == {"scatter"} and len(traces) == 3 * 2
    stats = data_tab.split_statistics("qa", data_dir)
    first = traces[0]
    context = stats["validation"]["context_words"]
    assert first.y[0] == pytest.approx(context["mean"])
    assert first.y[0] + first.error_y.array[0] == context["max"]
    assert first.y[0] - first.error_y.arrayminus[0] == pytest.approx(context["min"])
    assert "no percentiles" in view.lengths.layout.title.text


def test_statistics_are_read_once_per_task_and_folder(data_dir, monkeypatch):
    spec = registry.get_task("tweets")
    calls = []
    real = type(spec).statistics

    def counting(self, split, data_dir=None, data_file=None):
        calls.append(split)
        return real(self, split, data_dir=data_dir, data_file=data_file)

    monkeypatch.setattr(type(spec), "statistics", counting)
    steps = []
    data_tab.split_statistics("tweets", data_dir, progress=lambda frac, desc: steps.append((frac, desc)))
    data_tab.split_statistics("tweets", str(data_dir))
    assert calls == ["train", "val", "test"]
    assert [frac for frac, _ in steps] == [(0, 3), (1, 3), (2, 3)]


def test_a_missing_data_folder_is_one_sentence_and_is_not_cached(tmp_path):
    missing = tmp_path / "nowhere"
    view = data_tab.data_view(registry.task_names()[0], missing)
    assert view.message == (f"The data folder {missing} does not exist; set TRANSFER_LAB_DATA to the folder that "
                            f"holds the data sets.")
    assert view.rows == [] and view.counts is None and view.lengths is None
    assert data_tab._cache == {}


@pytest.mark.parametrize("task", registry.task_names())
def test_a_folder_without_the_task_data_is_one_sentence(task, tmp_path):
    message = data_tab.data_view(task, tmp_path).message
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    assert str(tmp_path) in message


def test_no_task_or_an_unknown_task_is_one_sentence():
    assert data_tab.data_view(None).message == "Pick a task to see its data set."
    assert data_tab.data_view("mnist").message.startswith("Unknown task 'mnist'.")


def test_gradio_handler_hides_what_it_cannot_show(data_dir, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(data_dir))
    message, table, counts, lengths = data_tab.data_stats("images", progress=None)
    assert message.startswith("**CIFAR-10")
    assert list(table["value"].columns) == ["statistic", "train", "test"] and table["visible"]
    assert counts["visible"] and lengths["visible"] is False
    monkeypatch.setenv("TRANSFER_LAB_DATA", "/nonexistent/transfer_lab_data")
    message, table, counts, lengths = data_tab.data_stats("images", progress=None)
    assert message.startswith("The data folder /nonexistent/transfer_lab_data does not exist")
    assert not table["visible"] and not counts["visible"] and not lengths["visible"]


def test_tab_builds_with_its_api_names():
    import gradio as gr

    with gr.Blocks() as app:
        with gr.Tab("Data") as tab:
            data_tab.build(tab=tab)
    names = {d["api_name"] for d in app.config["dependencies"]}
    assert {"data_stats", "data_stats_show", "data_stats_open"} <= names
    assert data_tab._cache == {}  # building reads no data
