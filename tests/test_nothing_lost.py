"""A sweep loses nothing and overwrites nothing silently: a full disk is one line, two runs
never share a folder, two sweeps never share an --out, a live writer's temporary is never
deleted, and one damaged run folder fails that run alone."""
import errno
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from avalanche.core import SupervisedPlugin

import strategies
from protocols import checkpoint, cli, iirc_cifar, report
from protocols.config import RunConfig
from protocols.execution import Job, Outcome
from protocols.out_lock import OutLock
from protocols.run_folder import CHECKPOINT, ERROR_FILE, RESULTS, check_out_dir

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Call to deprecated function update")]

SWEEP = ["--synthetic", "--synthetic-per-class", "8,2", "--fast-dev-run", "--device", "cpu",
         "--strategy", "finetune", "--mile", "off", "--quiet"]


def sweep(out, *more):
    return iirc_cifar.main([*SWEEP, "--out", str(out), *more])


@pytest.fixture(scope="module")
def finished(one_thread, tmp_path_factory):
    """A finished sweep of three runs (task configurations 0, 1, 2), copied by each test."""
    out = tmp_path_factory.mktemp("finished") / "runs"
    assert sweep(out, "--configurations", "0-2") == 0
    return out


def copy_of(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "runs"))


def full_disk(monkeypatch, name: str) -> None:
    """The one atomic writer, as on a full disk for files called ``name``: it writes part of
    the file, then fails with ENOSPC."""
    real = checkpoint.atomic_write_bytes

    def write(path, content):
        if Path(path).name != name:
            return real(path, content)

        def part_then_full(f):
            f.write(b"half a ")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, part_then_full)
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", write)
    monkeypatch.setattr(report, "atomic_write_bytes", write, raising=False)


# --- 1. the one writer: a full disk, a live writer's temporary --------------------------------

class FailsFirstTask(SupervisedPlugin):
    def before_training_exp(self, strategy, **kwargs):
        raise MemoryError("CUDA out of memory (pretend)")


def test_a_failure_that_cannot_be_recorded_does_not_stop_the_sweep(tmp_path, monkeypatch,
                                                                     capsys):
    builds = []
    build = strategies.build

    def first_run_raises(*args, plugins=(), **kwargs):
        builds.append(1)
        extra = [FailsFirstTask()] if len(builds) == 1 else []
        return build(*args, plugins=[*plugins, *extra], **kwargs)
    monkeypatch.setattr(strategies, "build", first_run_raises)
    full_disk(monkeypatch, ERROR_FILE)
    out = tmp_path / "runs"
    status = sweep(out, "--configurations", "0,1")
    err = capsys.readouterr().err
    assert status == 1 and len(builds) == 2                   # the second run still ran
    assert (out / "finetune" / "config1" / RESULTS).exists()
    failed = out / "finetune" / "config0"
    assert not (failed / ERROR_FILE).exists() and not list(failed.glob(".*.tmp"))
    assert (f"no space left on device writing {failed / ERROR_FILE}; free space and rerun "
            "with --resume") in err
    assert "Traceback" not in err and "1 run(s) failed" in err


@pytest.mark.parametrize("name", ["runs.csv", "comparison.md", "union_pwjs.png"])
def test_a_full_disk_leaves_no_partial_report_file_and_says_so_in_one_line(
        finished, tmp_path, monkeypatch, capsys, name):
    out = copy_of(finished, tmp_path)
    (out / name).unlink()
    full_disk(monkeypatch, name)
    status = cli.write_sweep_report(out, [])                   # returns: no traceback
    err = capsys.readouterr().err
    assert status != 0
    assert err == (f"error: no report: no space left on device writing {out / name}; free "
                   "space and rerun with --resume\n")
    assert not (out / name).exists() and not list(out.glob(".*.tmp"))


def test_the_failed_runs_printed_are_this_sweeps_even_without_a_report(tmp_path, capsys):
    job = Job(RunConfig(strategy="er"), tmp_path / "er" / "config0", "er")
    status = cli.write_sweep_report(tmp_path, [Outcome(job, "MemoryError: pretend")])
    err = capsys.readouterr().err
    assert status == 1 and "no report" in err
    assert "1 run(s) failed: er config0: MemoryError: pretend" in err


WRITE = """\
import os, sys, time
from pathlib import Path
from protocols.checkpoint import atomic_write_bytes
target, ready, go, die = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
def write(f):
    f.write(b"whole")
    f.flush()
    ready.touch()
    if die == "die":
        os._exit(1)
    while not go.exists():
        time.sleep(0.02)
atomic_write_bytes(target, write)
"""


def start_writer(tmp_path, die: bool):
    run, ready = tmp_path / "run", tmp_path / "ready"
    run.mkdir(exist_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITE, str(run / CHECKPOINT), str(ready),
                               str(tmp_path / "go"), "die" if die else "live"], cwd=REPO)
    while not ready.exists():
        assert writer.poll() is None or die
        time.sleep(0.01)
    return run, writer


def test_a_starting_run_leaves_a_live_writers_temporary_alone(tmp_path):
    run, writer = start_writer(tmp_path, die=False)
    check_out_dir(run, {}, resume=False)            # what a run starting in that folder does
    (tmp_path / "go").touch()
    assert writer.wait(timeout=60) == 0             # its rename found its temporary
    assert (run / CHECKPOINT).read_bytes() == b"whole"


def test_a_dead_writers_temporary_is_removed(tmp_path):
    run, writer = start_writer(tmp_path, die=True)
    assert writer.wait(timeout=60) == 1
    [left] = run.glob(".*.tmp")
    check_out_dir(run, {}, resume=False)
    assert not left.exists()


# --- 2. one folder per run, and no error.txt hidden -------------------------------------------

def test_two_runs_never_share_a_folder(tmp_path, capsys):
    (tmp_path / "sweep.yaml").write_text('data_root: ["/tmp/x y", "/tmp/x_y"]\n')
    with pytest.raises(SystemExit) as exit_info:
        iirc_cifar.parse_args([*SWEEP, "--config", str(tmp_path / "sweep.yaml"),
                               "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "two runs would share the folder" in err
    assert "data_root='/tmp/x y' vs '/tmp/x_y'" in err


def test_an_error_beside_results_is_listed(tmp_path):
    folder = tmp_path / "er" / "config0"
    folder.mkdir(parents=True)
    (folder / RESULTS).write_text("{}")
    (folder / ERROR_FILE).write_text("Traceback ...\nRayTaskError: worker died\n")
    [failure] = report.load_failures(tmp_path)
    assert failure["folder"] == str(folder)
    assert failure["error"].startswith("RayTaskError: worker died (results.json beside it")


# --- 3. one sweep per --out -------------------------------------------------------------------

HOLD_LOCK = """\
import sys
from pathlib import Path
from protocols.out_lock import OutLock
with OutLock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_sweep_on_one_out_exits_2_at_once(tmp_path):
    out = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        second = subprocess.run([sys.executable, str(REPO / "protocols" / "iirc_cifar.py"),
                                 *SWEEP, "--out", str(out)], capture_output=True, text=True,
                                cwd=REPO, timeout=600)
        assert second.returncode == 2
        assert f"in use by another sweep (pid {holder.pid} on " in second.stderr
        assert "Traceback" not in second.stderr
        assert not (out / "finetune").exists()                 # nothing trained
    finally:
        holder.communicate("", timeout=60)
    with OutLock(out):                                         # released when its holder exits
        pass


# --- 4. a damaged run fails alone -------------------------------------------------------------

@pytest.mark.parametrize("workers", [None, 2])
def test_a_damaged_unfinished_run_fails_alone(finished, tmp_path, capsys, workers):
    out = copy_of(finished, tmp_path)
    damaged, unfinished = out / "finetune" / "config0", out / "finetune" / "config1"
    (damaged / RESULTS).unlink()                    # as if interrupted after its last task
    (unfinished / RESULTS).unlink()
    checkpoint_bytes = (damaged / CHECKPOINT).read_bytes()
    (damaged / CHECKPOINT).write_bytes(checkpoint_bytes[:len(checkpoint_bytes) // 2])
    on_ray = ["--workers", str(workers)] if workers else []     # a local Ray cluster
    status = sweep(out, "--configurations", "0-2", "--resume", *on_ray)
    err = capsys.readouterr().err
    assert status == 1
    assert "corrupt" in (damaged / ERROR_FILE).read_text()
    assert (unfinished / RESULTS).exists()          # rebuilt from its checkpoint
    assert "1 run(s) failed: finetune config0" in err
    table = (out / "comparison.md").read_text()
    assert "## Failed runs (1)" in table and str(damaged) in table
    assert "| finetune | 2 |" in table


def test_a_finished_run_with_a_damaged_checkpoint_resumes_as_finished(finished, tmp_path):
    out = copy_of(finished, tmp_path)
    run = out / "finetune" / "config0"
    results = (run / RESULTS).read_bytes()
    (run / CHECKPOINT).write_bytes(b"garbage")
    assert sweep(out, "--configurations", "0-2", "--resume") == 0
    assert (run / RESULTS).read_bytes() == results and not (run / ERROR_FILE).exists()
