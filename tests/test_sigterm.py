"""SIGTERM (what a scheduler sends before it kills a job) stops a sweep as Ctrl-C does: one
line, the workers stopped, exit 143, and --resume finishes it. In process and on Ray."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# One run stopped in its second task: a 1-epoch first task, then 2 tasks of 20, tiny data.
SWEEP = [sys.executable, str(REPO / "protocols" / "iirc_cifar.py"), "--synthetic",
         "--synthetic-per-class", "8,2", "--first-task-epochs", "1", "--epochs", "20",
         "--num-tasks", "3", "--strategy",
         "finetune", "--mile", "off", "--configurations", "0", "--device", "cpu", "--quiet"]


def start(out: Path, *extra) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    return subprocess.Popen([*SWEEP, *extra, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.2)


@pytest.mark.parametrize("execution", [[], ["--workers", "1"]], ids=["in_process", "ray"])
def test_sigterm_stops_the_sweep_with_143_and_resume_finishes_it(execution, tmp_path):
    out = tmp_path / "runs"
    sweep = start(out, *execution)
    wait_for(out / "finetune" / "config0" / "checkpoint.pt", sweep)     # task 0 is done
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "--resume" in err
    assert "Traceback" not in err and "core dumped" not in err and "*** " not in err
    assert not (out / "finetune" / "config0" / "results.json").exists()
    if execution:
        return           # resume after a stop: tested here in process, on Ray in test_ray.py
    resumed = subprocess.run([*SWEEP, *execution, "--out", str(out), "--resume"], cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "finetune" / "config0" / "results.json").exists()
