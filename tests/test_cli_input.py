"""protocols/iirc_cifar.py refuses bad input before any training, naming the flag, and leaves
no run folder behind; Ctrl-C and failed downloads end with one clear line."""
from pathlib import Path
from urllib.error import URLError

import pytest
from avalanche.core import SupervisedPlugin

import strategies
from protocols import cli, iirc_cifar

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")


def main(capsys, *args):
    """(exit status, stderr) of the CLI, in process."""
    try:
        status = iirc_cifar.main([*args, "--quiet"])
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--strategy", ","], "--strategy names no strategy"),
    (["--num-tasks", "0"], "argument --num-tasks: expected a whole number >= 1"),
    (["--num-tasks", "-1"], "argument --num-tasks: expected a whole number >= 1"),
    (["--epochs", "0"], "argument --epochs: expected a whole number >= 1"),
    (["--epochs", "-1"], "argument --epochs: expected a whole number >= 1"),
    (["--first-task-epochs", "0"], "argument --first-task-epochs"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0"),
    (["--mile-imitation-epochs", "inf"], "argument --mile-imitation-epochs: expected a finite"),
    (["--mile-interactive-steps", "0"], "argument --mile-interactive-steps: expected a whole"),
    (["--mile-threshold", "1.5"], "argument --mile-threshold: expected a number strictly"),
    (["--device", "mps"], "--device: device 'mps' is not usable"),
    (["--device", "tpu"], "--device: device 'tpu' is not a device name torch knows"),
    (["--synthetic-per-class", "abc"], "argument --synthetic-per-class: expected TRAIN,TEST"),
    (["--synthetic-per-class", "30,0"], "argument --synthetic-per-class: expected a whole"),
    (["--selection", "best"], "argument --selection: invalid choice: 'best'"),
    (["--mile-old-class-teacher", "first"], "argument --mile-old-class-teacher: invalid choice"),
    (["--mile-loss-reduction", "none"], "argument --mile-loss-reduction: invalid choice"),
])
def test_bad_flag_exits_2_naming_it(capsys, tmp_path, args, message):
    status, err = main(capsys, "--synthetic", "--out", str(tmp_path / "out"), *args)
    assert status == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_out_under_a_regular_file(capsys, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    status, err = main(capsys, "--synthetic", "--out", str(tmp_path / "file" / "runs"))
    assert status == 2 and f"--out {tmp_path / 'file' / 'runs'}: " in err and "is a file" in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_not_writable(capsys):
    # /proc refuses new files even to root, unlike a chmod-ed folder
    status, err = main(capsys, "--synthetic", "--out", "/proc/mile_cl_runs")
    assert status == 2 and "--out /proc/mile_cl_runs: cannot write in /proc" in err


def test_download_without_network_says_what_to_do(capsys, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", no_network)
    status, err = main(capsys, "--download", "--data-root", str(tmp_path / "data"),
                       "--device", "cpu", "--out", str(tmp_path / "out"))
    assert status == 2
    assert "could not download CIFAR-100" in err and "name resolution" in err
    assert "cifar-100-python.tar.gz" in err and "without --download" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_files_that_are_not_torchvisions_cifar_are_not_read(capsys, tmp_path, fake_cifar_root):
    status, err = main(capsys, "--data-root", str(fake_cifar_root), "--device", "cpu",
                       "--out", str(tmp_path / "out"))
    assert status == 2 and "MD5 sum differs" in err and "--download" in err
    assert not (tmp_path / "out").exists()


def test_a_long_cpu_run_needs_an_explicit_device(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(cli, "measure_images_per_second", lambda *a, **k: 30.0)
    status, err = main(capsys, "--synthetic", "--strategy", "er", "--mile", "both",
                       "--out", str(tmp_path / "out"))
    # 22 tasks of synthetic data x 140 epochs (280 for task 0) at 30 images/s: hours
    assert status == 2 and "2 run(s) x " in err and "at 30 images/s (measured)" in err
    assert "Pass --device cpu to start it anyway" in err and "--synthetic --fast-dev-run" in err
    assert not (tmp_path / "out").exists()
    args = iirc_cifar.parse_args(["--synthetic", "--device", "cpu", "--out", str(tmp_path)])
    assert cli.announce_cost(args, cli.Benchmarks(download=False)) == 0   # asked for: it may start


class InterruptAtTask(SupervisedPlugin):
    def before_training_exp(self, strategy, **kwargs):
        if strategy.experience.current_experience == 1:
            raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_exit_130(capsys, tmp_path, monkeypatch):
    build = strategies.build
    monkeypatch.setattr(strategies, "build", lambda *a, plugins=(), **k: build(
        *a, plugins=[*plugins, InterruptAtTask()], **k))
    out = tmp_path / "out"
    status, err = main(capsys, "--synthetic", "--fast-dev-run", "--strategy", "finetune",
                       "--mile", "off", "--device", "cpu", "--out", str(out))
    assert status == 130
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert lines == [f"interrupted after task 1 of 3; rerun with --resume (resume=True) to "
                     f"continue from {out / 'finetune' / 'config0'}"]
    assert "Traceback" not in err


def test_fast_dev_run_progress_counts_the_tasks_it_runs(capsys):
    from mile_cl.benchmarks import synthetic_iirc
    from protocols.runner import run_iirc
    bench = synthetic_iirc(n_train_per_class=8, n_test_per_class=2)          # 22 tasks
    run_iirc(bench, "finetune", fast_dev_run=True, device="cpu", progress=True)
    out = capsys.readouterr().out
    assert "task 3/3 |" in out and "/22" not in out
