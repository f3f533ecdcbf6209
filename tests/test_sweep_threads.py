"""A sweep's numbers do not depend on how it was executed: the same 8 runs, one after another
in this process and as Ray tasks on two workers, give identical results.json metrics. Nothing
here sets torch's thread count or OMP_NUM_THREADS: each run's count comes from its config (a
sweep's --cpus-per-run), which run_iirc sets, in process and on a worker alike."""
import json

import pytest
import torch

from protocols import iirc_cifar

pytestmark = pytest.mark.filterwarnings("ignore")       # Ray's and Avalanche's chatter
SWEEP = ["--synthetic", "--fast-dev-run", "--device", "cpu", "--strategy", "finetune,er",
         "--mile", "both", "--configurations", "0-1", "--quiet"]
COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")


def results(out) -> dict:
    return {str(path.relative_to(out)): json.loads(path.read_text())
            for path in sorted(out.rglob("results.json"))}


def test_in_process_and_on_two_ray_workers_give_identical_results(tmp_path):
    threads_before = torch.get_num_threads()
    assert iirc_cifar.main([*SWEEP, "--out", str(tmp_path / "here")]) == 0
    assert torch.get_num_threads() == threads_before        # run_iirc gives the count back
    assert iirc_cifar.main([*SWEEP, "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    here, there = results(tmp_path / "here"), results(tmp_path / "ray")
    assert len(here) == 8 and here.keys() == there.keys()
    for run in here:
        assert here[run]["config"]["threads"] == 1 == there[run]["config"]["threads"]
        for key in COMPARED:
            assert here[run][key] == there[run][key], (run, key)
