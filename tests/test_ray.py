"""Sweeps on Ray: the same results as in process, and a worker killed mid-run is retried and
resumes from its last finished task. One local Ray cluster for the module (starting one takes
seconds); the runs are fast dev runs on the tiniest synthetic data."""
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import ray  # in the test extra: CI runs these tests, never skips them
import torch
from avalanche.core import SupervisedPlugin

from protocols import execution
from protocols.config import MILE_DEFAULTS, RunConfig
from protocols.execution import Job, run_on_ray, run_sequential

pytestmark = pytest.mark.filterwarnings("ignore")       # Ray's own start-up chatter
COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")

CONFIGS = [RunConfig(benchmark="synthetic_iirc", synthetic_per_class=(8, 2), strategy=name,
                     mile=mile, fast_dev_run=True, device="cpu")
           for name, mile in (("finetune", MILE_DEFAULTS), ("er", None))]


def jobs(out: Path, plugins=()) -> list[Job]:
    return [Job(c, out / c.strategy / "config0", c.strategy, plugins) for c in CONFIGS]


def metrics(job: Job) -> dict:
    results = json.loads((job.out_dir / "results.json").read_text())
    return {key: results[key] for key in COMPARED}


@pytest.fixture(scope="module")
def cluster():
    # Tests' plugins travel to the workers by value (the workers cannot import this file).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The cluster --workers 2 starts on this machine, through the same code.
    execution._init_ray(ray, workers=2, cpus_per_run=1, gpus_per_run=0, address=None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The runs one after another in this process (one thread, as Ray's workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        done = jobs(tmp_path_factory.mktemp("sequential"))
        assert all(outcome.ok for outcome in run_sequential(done, resume=False, show=False))
    finally:
        torch.set_num_threads(threads)
    return done


def test_ray_gives_the_same_results_as_in_process(cluster, in_process, tmp_path):
    on_ray = jobs(tmp_path)
    outcomes = run_on_ray(on_ray, workers=2, show=False)
    assert [o.error for o in outcomes] == [None, None]
    for here, there in zip(in_process, on_ray, strict=True):
        assert metrics(here) == metrics(there), here.label


class KillInThirdTask(SupervisedPlugin):
    """SIGKILLs its own worker after the first step of task 2 (the third task), on the first
    attempt only (a marker file remembers it); on the next attempt it notes the first task
    that attempt trains."""

    def __init__(self, folder):
        super().__init__()
        self.folder, self.first_task = Path(folder), None

    def before_training_exp(self, strategy, **kwargs):
        if self.first_task is None:
            self.first_task = strategy.experience.current_experience
            if (self.folder / "killed").exists():
                (self.folder / "retry_started_at_task").write_text(str(self.first_task))

    def after_training_iteration(self, strategy, **kwargs):
        if strategy.experience.current_experience == 2 and not (self.folder / "killed").exists():
            (self.folder / "killed").write_text("once")
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(cluster, in_process,
                                                                     tmp_path):
    job = jobs(tmp_path / "runs")[0]
    job = Job(job.config, job.out_dir, job.label, (KillInThirdTask(tmp_path),))
    [outcome] = run_on_ray([job], workers=1, max_retries=1, show=False)
    assert outcome.ok, outcome.error
    assert (tmp_path / "killed").exists()
    assert (tmp_path / "retry_started_at_task").read_text() == "2"    # not from scratch
    assert metrics(job) == metrics(in_process[0])


def test_a_run_killed_every_time_fails_without_stopping_the_sweep(cluster, tmp_path):
    class AlwaysKilled(KillInThirdTask):
        def after_training_iteration(self, strategy, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
    doomed = Job(CONFIGS[1], tmp_path / "doomed", "er", (AlwaysKilled(tmp_path),))
    fine = jobs(tmp_path)[0]
    outcomes = run_on_ray([doomed, fine], workers=2, max_retries=0, show=False)
    assert not outcomes[0].ok and "WorkerCrashedError" in outcomes[0].error
    assert (tmp_path / "doomed" / "error.txt").exists()
    assert outcomes[1].ok
