"""The old-model-labels ablation (mile_cl.old_model_labels): which classes get the old model's
labels, hard vs soft, one frozen old model per experience and no teacher copies."""
import pytest
import torch
from test_plugin import EchoTeacher, RecordingBCE, make_benchmark, make_model, make_strategy, train

from mile_cl import old_model_labels
from mile_cl.old_model_labels import OldModelLabelsPlugin, old_model_targets

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")


def sigmoid(value: float) -> float:
    return torch.sigmoid(torch.tensor(value)).item()


def test_targets_by_hand():
    ground_truth = torch.tensor([[0., 0., 1., 0.], [1., 0., 0., 1.]])
    # old model (2 old classes): sample 0 -> sigmoid(2)=0.881, sigmoid(-1)=0.269;
    # sample 1 -> sigmoid(-3)=0.047, sigmoid(0.5)=0.622. Columns 2, 3 are new: never touched.
    old_logits = torch.tensor([[2.0, -1.0, 9.0, 9.0], [-3.0, 0.5, -9.0, -9.0]])
    hard = old_model_targets(ground_truth, old_logits, num_old=2, soft=False)
    assert hard.tolist() == [[1., 0., 1., 0.], [1., 1., 0., 1.]]   # ground truth 1 kept
    soft = old_model_targets(ground_truth, old_logits, num_old=2, soft=True)
    s = torch.sigmoid(torch.tensor([2.0, -1.0, 0.5]))
    assert soft[0, :2].tolist() == pytest.approx([s[0].item(), s[1].item()])
    assert soft[1, :2].tolist() == pytest.approx([1.0, s[2].item()])  # max with the 1
    assert soft[:, 2:].tolist() == ground_truth[:, 2:].tolist()
    assert ground_truth.tolist() == [[0., 0., 1., 0.], [1., 0., 0., 1.]]   # not modified
    thresholded = old_model_targets(ground_truth, old_logits, 2, soft=False, threshold=0.9)
    assert thresholded[0, :2].tolist() == [0., 0.]


@pytest.mark.parametrize("soft", [False, True])
def test_the_previous_model_labels_old_classes_at_every_step(soft, monkeypatch):
    copies = []
    real_copy = old_model_labels.frozen_copy
    monkeypatch.setattr(old_model_labels, "frozen_copy",
                        lambda model, *a: copies.append(1) or real_copy(model, *a))
    plugin = OldModelLabelsPlugin(soft=soft)
    criterion = RecordingBCE(6)
    strategy = make_strategy(make_model(), [plugin], criterion=criterion, epochs=2)
    first, second = make_benchmark().train_stream
    train(strategy, first)
    assert plugin.old_model is None and len(copies) == 0
    first_targets = len(criterion.targets)
    train(strategy, second)
    assert len(copies) == 1 and plugin.num_old == 2          # one frozen model, no generations
    # The old model now calls every sample (its class + 1) % 4: class 2 -> 3, class 3 -> 0.
    plugin.old_model = EchoTeacher(shift=1)
    criterion.targets.clear()
    train(strategy, second)
    assert len(copies) == 1                                   # same experience: same model
    for targets in criterion.targets:
        new = targets[:, 2:4]
        assert ((new == 0) | (new == 1)).all() and (new.sum(1) == 1).all()   # ground truth
        # old classes: class 3's samples get class 0 from the old model, class 2's get none
        high, low = (sigmoid(10.0), sigmoid(-10.0)) if soft else (1.0, 0.0)
        old = targets[:, :2]
        assert old[:, 1].tolist() == pytest.approx([low] * len(old))
        is_three = targets[:, 3] == 1
        assert old[is_three, 0].tolist() == pytest.approx([high] * int(is_three.sum()))
        assert old[~is_three, 0].tolist() == pytest.approx([low] * int((~is_three).sum()))
    assert first_targets > 0


def test_state_round_trip_rebuilds_the_old_model():
    plugin = OldModelLabelsPlugin()
    strategy = make_strategy(make_model(), [plugin])
    first, second = make_benchmark().train_stream
    train(strategy, first)
    train(strategy, second)
    state = plugin.state_dict()
    restored = OldModelLabelsPlugin()
    restored.load_state_dict(state)
    strategy2 = make_strategy(make_model(seed=1), [restored])
    strategy2.experience = second
    restored.before_training_exp(strategy2)
    for name, tensor in plugin.old_model.state_dict().items():
        assert torch.equal(restored.old_model.state_dict()[name], tensor)


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold must be in"):
        OldModelLabelsPlugin(threshold=1.0)


def test_a_run_with_old_model_labels_is_labelled_and_resumes_mid_run(tmp_path):
    from mile_cl.benchmarks import synthetic_iirc
    from protocols.report import base_label
    from protocols.runner import RunInterrupted, run_iirc
    small = synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=0,
                           n_train_per_class=6, n_test_per_class=2, image_size=32)
    settings = dict(old_model_labels="soft", fast_dev_run=True, device="cpu", progress=False)
    whole = run_iirc(small, "er", **settings, out_dir=tmp_path / "whole")
    assert whole["config"]["old_model_labels"] == "soft"
    assert base_label(whole) == "er+old-labels[soft]"

    def stop_after_task_2(summary):
        if summary.startswith("task 2/"):
            raise KeyboardInterrupt
    with pytest.raises(RunInterrupted):
        run_iirc(small, "er", **settings, out_dir=tmp_path / "cut", on_task_end=stop_after_task_2)
    resumed = run_iirc(small, "er", **settings, out_dir=tmp_path / "cut", resume=True)
    for key in ("union_avg", "R", "hierarchy", "posttask_valid"):
        assert resumed[key] == whole[key], key


def test_a_config_saved_before_a_field_existed_still_compares_equal():
    from protocols.run_folder import _comparable
    now = {"strategy": "er", "old_model_labels": None, "image_size": None}
    saved = {"strategy": "er"}                     # a results.json from before both fields
    assert _comparable(saved) == _comparable(now)
    assert _comparable({"strategy": "er", "old_model_labels": "hard"}) != _comparable(now)
