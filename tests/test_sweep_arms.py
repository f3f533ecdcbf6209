"""Sweep files with ``arms``: a union of grids for an ablation whose arms differ in several
settings at once."""
import pytest

from protocols.config import MILE_DEFAULTS
from protocols.sweep import expand, load_sweep_file, run_folders

ABLATION = """\
benchmark: synthetic_iirc
strategy: er
seed: [0, 1]
configuration: [0, 1]
arms:
  - {mile: false}
  - {mile: true}
  - {mile: false, old_model_labels: hard}
  - {mile: false, old_model_labels: soft}
  - {strategy: icarl_cnn, mile: [false, true]}
"""


def test_each_arm_is_expanded_over_the_shared_axes(tmp_path):
    (tmp_path / "ablation.yaml").write_text(ABLATION)
    configs = expand(load_sweep_file(tmp_path / "ablation.yaml"))
    assert len(configs) == (4 + 2) * 2 * 2
    arms = {(c.strategy, c.mile is not None, c.old_model_labels) for c in configs}
    assert arms == {("er", False, None), ("er", True, None), ("er", False, "hard"),
                    ("er", False, "soft"), ("icarl_cnn", False, None), ("icarl_cnn", True, None)}
    assert all(c.mile in (None, MILE_DEFAULTS) for c in configs)
    folders = [folder for _, folder in run_folders(configs, tmp_path / "out")]
    assert len(set(folders)) == len(folders)
    assert tmp_path / "out" / "er,seed=0,old_model_labels=hard" / "config1" in folders


def test_an_unknown_key_in_an_arm_is_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("arms:\n  - {mile: false, old_labels: hard}\n")
    with pytest.raises(ValueError, match="arm 0: unknown key 'old_labels'"):
        load_sweep_file(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("arms: {mile: false}\n")
    with pytest.raises(ValueError, match="arms must be a list of mappings"):
        load_sweep_file(tmp_path / "bad2.yaml")


def test_unique_keeps_the_first_of_equal_runs_in_order():
    from protocols.config import RunConfig
    from protocols.sweep import unique
    a, b = RunConfig(strategy="er"), RunConfig(strategy="finetune")
    again = RunConfig(strategy="er", strategy_overrides={})
    assert unique([a, b, again, b]) == [a, b]
    assert len(unique([RunConfig(strategy_overrides={"mem_per_class": 1}),
                       RunConfig(strategy_overrides={"mem_per_class": 2})])) == 2
