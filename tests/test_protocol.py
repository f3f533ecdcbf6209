"""run_iirc end to end on the synthetic stand-in: results, resume, and bad input."""
import json

import pytest
import torch
from avalanche.core import SupervisedPlugin

import strategies
from mile_cl.benchmarks import synthetic_iirc
from protocols.config import RunConfig, field_names
from protocols.runner import run_iirc

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")

COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")


@pytest.fixture(scope="module")
def small_iirc():
    return synthetic_iirc(n_superclasses=3, subclasses_per_superclass=2, n_orphans=2,
                          n_train_per_class=30, n_test_per_class=6, seed=0)


def run(bench, out_dir, **kwargs):
    options = dict(mile=dict(interactive_steps=2, imitation_steps=1), epochs=2,
                   first_task_epochs=2, num_tasks=3, batch_size=16, device="cpu",
                   progress=False, seed=5)
    options.update(kwargs)
    return run_iirc(bench, "er", out_dir=out_dir, **options)


class Crash(Exception):
    pass


class CrashAtTask(SupervisedPlugin):
    def __init__(self, task):
        super().__init__()
        self.task = task

    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.task:
            raise Crash()


def test_results_have_the_iirc_shape(small_iirc, tmp_path):
    results = run(small_iirc, tmp_path / "run")
    assert results["config"]["data_on_device"] is False      # the default on a CPU
    assert len(results["union_avg"]["pw_jaccard"]) == 3
    R = results["R"]["pw_jaccard"]
    assert len(R) == 3 and all(R[j][k] is None for j in range(3) for k in range(j + 1, 3))
    assert all(0 <= R[j][k] <= 1 for j in range(3) for k in range(j + 1))
    assert set(results["hierarchy"]) == {"superclass_recall", "subclass_recall",
                                         "wrong_association"}
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["union_avg"] == results["union_avg"]
    assert saved["config"]["strategy"] == "er" and saved["config"]["mile"]["interactive_steps"] == 2
    assert not (tmp_path / "run" / "results.partial.json").exists()
    # the whole resolved RunConfig, plus what else tells two results apart
    extras = {"device_type", "data_fingerprint", "mile_cl_version"}
    config = RunConfig.from_dict({k: v for k, v in saved["config"].items() if k not in extras})
    assert config.first_task_epochs == 2 and config.device == "cpu" and config.num_tasks == 3
    assert set(saved["config"]) == set(field_names()) | extras
    env = saved["environment"]
    assert {"torch", "torchvision", "avalanche", "mile_cl", "git_commit", "host", "gpu",
            "wall_seconds"} <= set(env) and env["wall_seconds"] > 0


@pytest.mark.parametrize("data_on_device", [False, True])
def test_resume_after_a_crash_matches_an_uninterrupted_run(small_iirc, tmp_path, monkeypatch,
                                                           data_on_device):
    straight = run(small_iirc, tmp_path / "straight", data_on_device=data_on_device)

    build = strategies.build
    def crashing_build(*args, plugins=(), **kwargs):
        return build(*args, plugins=[*plugins, CrashAtTask(2)], **kwargs)
    monkeypatch.setattr(strategies, "build", crashing_build)
    with pytest.raises(Crash):
        run(small_iirc, tmp_path / "crashed", data_on_device=data_on_device)
    partial = json.loads((tmp_path / "crashed" / "results.partial.json").read_text())
    assert partial["tasks_done"] == 2
    assert not (tmp_path / "crashed" / "results.json").exists()
    monkeypatch.setattr(strategies, "build", build)

    resumed = run(small_iirc, tmp_path / "crashed", resume=True, data_on_device=data_on_device)
    for key in COMPARED:
        assert resumed[key] == straight[key], key
    # A finished run is returned as saved, not redone.
    again = run(small_iirc, tmp_path / "crashed", resume=True, data_on_device=data_on_device)
    assert again["timings"] == resumed["timings"]


def test_refuses_a_folder_with_another_run(small_iirc, tmp_path):
    run(small_iirc, tmp_path / "run", num_tasks=1)
    with pytest.raises(ValueError, match="different run's checkpoint.*num_tasks"):
        run(small_iirc, tmp_path / "run", num_tasks=2, resume=True)
    with pytest.raises(ValueError, match="already holds a run .*; pass resume=True"):
        run(small_iirc, tmp_path / "run", num_tasks=1)


def test_corrupt_checkpoint(small_iirc, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        run(small_iirc, tmp_path / "run", resume=True)


def test_bad_arguments(small_iirc):
    with pytest.raises(ValueError, match="unknown strategy 'erx'; valid names: finetune"):
        run_iirc(small_iirc, "erx")
    with pytest.raises(TypeError, match="mile must be None, True or a dict"):
        run_iirc(small_iirc, "er", mile="yes")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            run_iirc(small_iirc, "er", device="cuda")


def test_joint_reports_every_task(small_iirc):
    # joint trains once on everything; each evaluation must still be recorded as task j
    results = run_iirc(small_iirc, "joint", epochs=1, first_task_epochs=1, num_tasks=3,
                       batch_size=16, device="cpu", progress=False)
    assert all(v is not None for v in results["union_avg"]["pw_jaccard"])
    assert all(results["R"]["pw_jaccard"][j][j] is not None for j in range(3))


def test_divergence_fails_loudly(small_iirc):
    with pytest.raises(FloatingPointError, match="diverged in task 0.*lower the learning rate"):
        run_iirc(small_iirc, "finetune", lr=1e30, epochs=1, first_task_epochs=1,
                 num_tasks=1, batch_size=16, device="cpu", progress=False)


def test_prior_bias_is_the_same_with_and_without_mile(small_iirc, monkeypatch):
    heads = []
    build = strategies.build
    def recording_build(name, model, *args, **kwargs):
        heads.append(model.head.bias.detach().clone())
        return build(name, model, *args, **kwargs)
    monkeypatch.setattr(strategies, "build", recording_build)
    for mile in (None, True):
        run_iirc(small_iirc, "finetune", mile=mile, prior_bias=True, fast_dev_run=True,
                 num_tasks=1, device="cpu", progress=False)
    expected = torch.full_like(heads[0], -torch.log(torch.tensor(float(small_iirc.num_classes))))
    assert torch.allclose(heads[0], expected) and torch.allclose(heads[1], expected)
