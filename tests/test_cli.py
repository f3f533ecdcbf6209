"""protocols/iirc_cifar.py: the main job, end to end on the synthetic stand-in, and its errors."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(REPO / "protocols" / "iirc_cifar.py")]


def cli(*args, cwd=None):
    return subprocess.run([*CLI, *args, "--quiet"], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_fast_dev_run_writes_every_output(tmp_path):
    out = tmp_path / "out"
    done = cli("--synthetic", "--fast-dev-run", "--strategy", "finetune,er", "--mile", "both",
               "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    labels = ["finetune", "finetune+mile", "er", "er+mile"]
    for label in labels:
        results = json.loads((out / label / "config0" / "results.json").read_text())
        assert results["config"]["strategy"] == label.split("+")[0]
        assert (results["config"]["mile"] is not None) == label.endswith("+mile")
        assert len(results["union_avg"]["pw_jaccard"]) == 3          # fast dev: 3 tasks
        assert all(0 <= v <= 1 for v in results["union_avg"]["pw_jaccard"])
        assert results["timings"]["total_seconds"] > 0
        assert any((out / label / "config0" / "tensorboard").rglob("events.out.tfevents*"))
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    variant = "+MILe[gt,prev-teacher,mean,no-prior,e1/e1]"     # the protocol's default, named
    assert {r["label"] for r in rows} == {"finetune", "finetune" + variant, "er", "er" + variant}
    table = (out / "comparison.md").read_text()
    assert "Model selection (best epoch, LR schedule): intask" in table
    for label in ("finetune", "er" + variant):
        assert f"| {label} " in table
    for png in [out / "union_pwjs.png", *out.glob("r_matrix_*.png")]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(out.glob("r_matrix_*.png"))) == 4


@pytest.mark.parametrize("args, message", [
    (["--strategy", "nope"], "unknown strategy nope"),
    (["--configurations", "12"], "configurations 0..9"),
    (["--configurations", "a-b"], "use forms like"),
])
def test_bad_arguments_exit_2(tmp_path, args, message):
    done = cli("--synthetic", "--out", str(tmp_path / "out"), *args)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "out").exists()


def test_missing_cifar_files(tmp_path):
    done = cli("--data-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "--download" in done.stderr
    assert not (tmp_path / "out").exists()


def test_cuda_without_gpu(tmp_path, monkeypatch):
    # Pretend there is no GPU even on a machine with one, so the error path always runs.
    from protocols import iirc_cifar
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        iirc_cifar.parse_args(["--synthetic", "--device", "cuda", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


def test_other_runs_checkpoint_and_corrupt_checkpoint(tmp_path):
    out = tmp_path / "out"
    base = ["--synthetic", "--fast-dev-run", "--strategy", "finetune", "--mile", "off",
            "--device", "cpu", "--out", str(out)]
    assert cli(*base).returncode == 0
    other = cli(*base, "--seed", "7", "--resume")
    assert other.returncode == 2 and "different run's checkpoint" in other.stderr
    # a damaged run is that run's failure (finished runs are read from results.json first)
    (out / "finetune" / "config0" / "checkpoint.pt").write_bytes(b"garbage")
    (out / "finetune" / "config0" / "results.json").unlink()
    corrupt = cli(*base, "--resume")
    assert corrupt.returncode == 1 and "finetune config0" in corrupt.stderr
    assert "corrupt" in (out / "finetune" / "config0" / "error.txt").read_text()
