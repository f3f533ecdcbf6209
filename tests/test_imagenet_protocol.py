"""protocols/iirc_imagenet.py end to end on the CPU, on a fake ImageNet tree, through the report."""
import json

import pytest
from fake_imagenet import write_fake_imagenet

from mile_cl.benchmarks import iirc_imagenet
from protocols import iirc_imagenet as cli
from protocols.runner import run_iirc

# 32 px crops keep ResNet-50 on the CPU to seconds; the recipe's 224 is the default
QUICK = ["--fast-dev-run", "--image-size", "32", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def fake_imagenet_root(tmp_path_factory):
    return write_fake_imagenet(tmp_path_factory.mktemp("imagenet"), size=(40, 30))


def test_fast_dev_run_through_the_report(fake_imagenet_root, tmp_path, capsys):
    out = tmp_path / "runs"
    code = cli.main(["--data-root", str(fake_imagenet_root), "--variant", "lite",
                     "--strategy", "er", "--mile", "on", "--num-workers", "0",
                     "--out", str(out), *QUICK])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "er+mile" / "config0" / "results.json").read_text())
    assert result["benchmark"]["name"] == "iirc_imagenet_lite"
    assert result["config"]["model"] == "resnet50"
    assert result["config"]["lr"] == 0.1 and result["config"]["data_on_device"] is False
    assert len(result["union_avg"]["pw_jaccard"]) == 3 and result["tasks_done"] == 3
    report = (out / "comparison.md").read_text()
    assert "iirc_imagenet_lite" in report
    assert "no sourced IIRC paper numbers for IIRC-ImageNet" in report
    assert "paper pw-JS" not in report          # no column of numbers we cannot source


def test_gpu_decode_path_runs_on_the_cpu(fake_imagenet_root, tmp_path, capsys):
    """Two tasks of ER: the second trains on the stream concatenated with the buffer."""
    out = tmp_path / "runs"
    code = cli.main(["--data-root", str(fake_imagenet_root), "--variant", "full",
                     "--configurations", "4", "--strategy", "er", "--mile", "off",
                     "--gpu-decode", "--num-workers", "1", "--num-tasks", "2",
                     "--out", str(out), *QUICK])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "er" / "config4" / "results.json").read_text())
    assert result["tasks_done"] == 2
    assert result["config"]["gpu_decode"] is True and result["config"]["num_workers"] == 1
    assert result["benchmark"]["name"] == "iirc_imagenet_full"


@pytest.mark.parametrize("flags,needle", [
    ([], "--data-root"),
    (["--configurations", "5"], "configurations 0..4"),
    (["--data-on-device", "on"], "IIRC-CIFAR only"),
    (["--download"], "IIRC-CIFAR only"),
    (["--num-workers", "-1"], "--num-workers"),
])
def test_bad_flags_exit_2_before_training(fake_imagenet_root, flags, needle, capsys):
    root = [] if not flags else ["--data-root", str(fake_imagenet_root)]
    with pytest.raises(SystemExit) as exit_:
        cli.main([*root, *flags, *QUICK])
    assert exit_.value.code == 2
    assert needle in capsys.readouterr().err


def test_missing_data_root_exits_2_with_the_layout(tmp_path, capsys):
    code = cli.main(["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                     *QUICK])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_data_on_device_is_refused_for_image_files(fake_imagenet_root):
    benchmark = iirc_imagenet(fake_imagenet_root, size=32, resize=36)
    with pytest.raises(ValueError, match="only for array-backed benchmarks"):
        run_iirc(benchmark, "finetune", data_on_device=True, device="cpu", fast_dev_run=True)
