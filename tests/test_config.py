"""RunConfig and MILeConfig: one description of a run, which cannot drift from the plugin."""
import dataclasses
import inspect
import json

import pytest

from mile_cl import MILePlugin
from protocols.config import MILE_DEFAULTS, MILeConfig, RunConfig, as_mile_config


def test_mile_config_mirrors_the_plugins_keywords_and_defaults():
    parameters = inspect.signature(MILePlugin.__init__).parameters
    keywords = {name: p.default for name, p in parameters.items() if name != "self"}
    fields = {f.name: f.default for f in dataclasses.fields(MILeConfig)}
    assert fields == keywords


def test_mile_config_changed_to_steps_drops_the_default_epochs():
    mile = MILE_DEFAULTS.with_changes(interactive_steps=5, threshold=0.7)
    assert mile.interactive_steps == 5 and mile.interactive_epochs is None
    assert mile.imitation_epochs == 1 and mile.threshold == 0.7 and mile.keep_ground_truth
    assert as_mile_config(True) is MILE_DEFAULTS and as_mile_config(False) is None
    with pytest.raises(ValueError, match="threshold must be in"):
        MILeConfig(interactive_steps=1, imitation_steps=1, threshold=1.5)


def test_run_config_round_trips_through_json():
    config = RunConfig(benchmark="synthetic_iirc", strategy="er", mile=MILE_DEFAULTS,
                       synthetic_per_class=(8, 2), strategy_overrides={"mem_per_class": 10})
    again = RunConfig.from_dict(json.loads(json.dumps(config.as_dict())))
    assert again == config


@pytest.mark.parametrize("values, error, message", [
    ({"epoch": 3}, ValueError, "unknown run setting 'epoch'; valid: benchmark, configuration"),
    ({"epochs": "3"}, TypeError, "epochs must be a whole number, got '3'"),
    ({"lr": True}, TypeError, "lr must be a number, got True"),
    ({"synthetic_per_class": [1, 2, 3]}, TypeError, "synthetic_per_class must be a pair"),
    ({"mile": {"threshhold": 0.4}}, ValueError, "unknown mile setting 'threshhold'"),
    ({"epochs": 0}, ValueError, "epochs must be a whole number >= 1"),
    ({"strategy": "erx"}, ValueError, "unknown strategy 'erx'"),
    ({"benchmark": "mnist"}, ValueError, "unknown benchmark 'mnist'; valid: iirc_cifar100"),
    ({"configuration": 10}, ValueError, "configuration must be an IIRC task order 0..9"),
    ({"selection": "best"}, ValueError, "selection must be one of intask, posttask, last"),
    # values that used to pass until the run started
    ({"lr": float("nan")}, ValueError, "lr must be a finite number > 0, got nan"),
    ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
    ({"seed": 2**32}, ValueError, "seed must be a whole number from 0 to 2\\*\\*32 - 1"),
    ({"model": "../../x"}, ValueError, r"model must be one of resnet32, resnet50, got '../../x'"),
    ({"decoder": "cv2"}, ValueError, "decoder must be one of pil, torchvision, got 'cv2'"),
    ({"precision": "fp16"}, ValueError, "precision must be one of bf16, fp32 or None"),
    ({"strategy_overrides": {"bogus": 1}}, ValueError,
     "strategy_overrides: er takes no keyword 'bogus'; valid: mem_per_class, buffer_seed, "),
    ({"strategy": "er_infinite", "strategy_overrides": {"mem_per_class": 5}}, ValueError,
     "er_infinite takes no keyword 'mem_per_class'"),
    ({"strategy_overrides": {"train_epochs": 5}}, ValueError,
     "'train_epochs' is set from the run's own settings"),
])
def test_bad_settings_name_the_field(values, error, message):
    with pytest.raises(error, match=message):
        RunConfig.from_dict(values)
