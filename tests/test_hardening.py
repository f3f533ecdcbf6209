"""Issue-10 hardening of run_iirc's output folder: nothing runs from it, nothing finished is
lost, and a resume on other data or settings is refused."""
import json
import os
import pickle
import stat

import pytest
import torch
from avalanche.core import SupervisedPlugin

import strategies
from mile_cl.benchmarks import synthetic_iirc
from protocols.checkpoint import atomic_write_bytes, load_torch
from protocols.run_folder import CHECKPOINT, RESULTS
from protocols.runner import RunInterrupted, run_iirc

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")
COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")


def tiny_iirc(n_train=24):
    return synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=1,
                          n_train_per_class=n_train, n_test_per_class=4, seed=0)


@pytest.fixture(scope="module")
def bench():
    return tiny_iirc()


def run(bench, out_dir, **kwargs):
    options = dict(mile=dict(interactive_steps=1, imitation_steps=1), epochs=1,
                   first_task_epochs=1, num_tasks=2, batch_size=16, device="cpu",
                   progress=False, seed=3)
    options.update(kwargs)
    return run_iirc(bench, "er", out_dir=out_dir, **options)


class RunsCode:
    """Unpickling this object runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("resume", [False, True])
def test_a_crafted_checkpoint_never_runs(bench, tmp_path, resume):
    out, marker = tmp_path / "run", tmp_path / "code_ran"
    out.mkdir()
    with open(out / CHECKPOINT, "wb") as f:
        pickle.dump({"config": RunsCode(marker)}, f)
    expected = "already holds a run" if not resume else f"checkpoint {out / CHECKPOINT}"
    with pytest.raises(ValueError, match=expected):
        run(bench, out, resume=resume)
    assert not marker.exists()
    # torch's own format with the payload inside is refused too, naming the file
    torch.save({"config": RunsCode(marker)}, out / CHECKPOINT)
    with pytest.raises(ValueError, match=f"{out / CHECKPOINT}.*not a mile-cl checkpoint"):
        load_torch(out / CHECKPOINT)
    assert not marker.exists()


def test_a_checkpoint_of_another_program_is_named(bench, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"weights": torch.zeros(2)}, out / CHECKPOINT)     # loadable, not ours
    with pytest.raises(ValueError, match=f"{out / CHECKPOINT} is not a checkpoint of this"):
        run(bench, out, resume=True)


@pytest.fixture(scope="module")
def straight(bench, tmp_path_factory):
    return run(bench, tmp_path_factory.mktemp("straight") / "run")


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_resume_rebuilds_a_lost_results_json(bench, tmp_path, straight, damage):
    out = tmp_path / "run"
    run(bench, out)
    if damage == "deleted":
        (out / RESULTS).unlink()
    else:
        (out / RESULTS).write_text((out / RESULTS).read_text()[:100])
    rebuilt = run(bench, out, resume=True)
    saved = json.loads((out / RESULTS).read_text())
    for key in COMPARED:
        assert rebuilt[key] == straight[key], key
        assert saved[key] == json.loads(json.dumps(straight[key])), key
    assert saved["tasks_done"] == 2


def test_results_get_the_umask_mode_and_stale_temporaries_go(bench, tmp_path):
    out = tmp_path / "run"
    old_umask = os.umask(0o022)
    try:
        out.mkdir()
        stale = out / ".checkpoint.pt.abc123.tmp"     # what an interrupted write leaves
        stale.write_bytes(b"half")
        run(bench, out)
        assert not stale.exists()
        for name in (RESULTS, CHECKPOINT):
            assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    finally:
        os.umask(old_umask)


def test_atomic_write_failure_leaves_neither_file_nor_temporary(tmp_path):
    def fail(f):
        f.write(b"part")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "x.json", fail)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, field", [
    (dict(bench=tiny_iirc(n_train=30)), "data_fingerprint"),
    (dict(benchmark_info=dict(benchmark="synthetic_iirc", synthetic_per_class=[9, 9])),
     "synthetic_per_class"),
    (dict(data_on_device=True), "data_on_device"),
])
def test_resume_refuses_other_data_or_settings(bench, tmp_path, change, field):
    out = tmp_path / "run"
    run(bench, out, num_tasks=1, benchmark_info=dict(benchmark="synthetic_iirc",
                                                     synthetic_per_class=[24, 4]))
    change = dict(change)
    other = change.pop("bench", bench)
    change.setdefault("benchmark_info", dict(benchmark="synthetic_iirc",
                                             synthetic_per_class=[24, 4]))
    with pytest.raises(ValueError, match=f"differs in: .*{field}"):
        run(other, out, num_tasks=1, resume=True, **change)


def test_config_records_what_changes_results(bench, tmp_path):
    config = run(bench, tmp_path / "run", num_tasks=1)["config"]
    assert config["device_type"] == "cpu" and config["precision"] == "fp32"
    assert len(config["data_fingerprint"]) == 16 and config["mile_cl_version"]


class InterruptAtTask(SupervisedPlugin):
    def __init__(self, task):
        super().__init__()
        self.task = task

    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == self.task:
            raise KeyboardInterrupt


def test_ctrl_c_says_how_far_the_run_got(bench, tmp_path, monkeypatch):
    build = strategies.build
    monkeypatch.setattr(strategies, "build", lambda *a, plugins=(), **k: build(
        *a, plugins=[*plugins, InterruptAtTask(1)], **k))
    with pytest.raises(RunInterrupted, match="interrupted after task 1 of 2; rerun with --resume"):
        run(bench, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "results.partial.json").read_text())["tasks_done"] == 1
