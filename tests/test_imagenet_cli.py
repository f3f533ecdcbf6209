"""`python -m mile_cl.benchmarks imagenet`: the summary, and a clear exit for each bad input."""
import os
import subprocess
import sys

import pytest
from fake_imagenet import write_fake_imagenet

from mile_cl.benchmarks import iirc_imagenet
from mile_cl.benchmarks.__main__ import main
from mile_cl.benchmarks.imagenet import ImageNetLayoutError, iirc_imagenet_wnids


@pytest.fixture(scope="module")
def fake_imagenet_root(tmp_path_factory):
    return write_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


def run_main(argv, capsys):
    """(exit code, stdout, stderr) of the CLI run in process."""
    code = 0
    try:
        main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_prints_every_task_with_its_sizes(fake_imagenet_root, capsys):
    code, out, err = run_main(["imagenet", "--data-root", str(fake_imagenet_root),
                               "--variant", "lite", "--configuration", "3"], capsys)
    assert code == 0, err
    benchmark = iirc_imagenet(fake_imagenet_root, "lite", 3)
    rows = out.splitlines()[1:-1]
    assert len(rows) == 10
    for k, row in enumerate(rows):
        sizes = [len(s[k].dataset) for s in (benchmark.train_stream,
                                              benchmark.intask_valid_stream,
                                              benchmark.posttask_valid_stream,
                                              benchmark.test_stream)]
        assert [int(v) for v in row.split()[:5]] == [k, *sizes]
    assert "333 labels in 10 tasks" in out
    assert "Chihuahua" in out or "(63 labels)" in out      # words, not bare WNIDs


def assert_clear_exit(argv, capsys, *needles):
    code, _, err = run_main(argv, capsys)
    assert code == 2, err
    for needle in needles:
        assert needle in err, err


def test_missing_root(tmp_path, capsys):
    assert_clear_exit(["imagenet", "--data-root", str(tmp_path / "nowhere")], capsys,
                      "does not exist", "train/ and val/")


def test_no_data_root_given(capsys):
    assert_clear_exit(["imagenet"], capsys, "--data-root")


def test_missing_class_folders_are_named_and_counted(tmp_path, capsys):
    wnids = iirc_imagenet_wnids()
    for wnid in wnids[:3]:
        (tmp_path / "train" / wnid).mkdir(parents=True)
    assert_clear_exit(["imagenet", "--data-root", str(tmp_path)], capsys,
                      "995 of the 998 class folders", wnids[3])


def test_missing_val_class_folders_say_how_to_sort_val(fake_imagenet_root, tmp_path, capsys):
    (tmp_path / "val").mkdir()
    os.symlink(fake_imagenet_root / "train", tmp_path / "train")
    assert_clear_exit(["imagenet", "--data-root", str(tmp_path)], capsys,
                      "998 of the 998", "val/ was sorted into class folders")


def test_non_jpeg_file_is_named(tmp_path, capsys):
    root = write_fake_imagenet(tmp_path)
    stray = root / "train" / iirc_imagenet_wnids()[7] / "notes.txt"
    stray.write_text("not an image")
    assert_clear_exit(["imagenet", "--data-root", str(root)], capsys, str(stray), ".JPEG")


@pytest.mark.parametrize("configuration", ["5", "-1"])
def test_configuration_out_of_range(fake_imagenet_root, configuration, capsys):
    assert_clear_exit(["imagenet", "--data-root", str(fake_imagenet_root),
                       "--configuration", configuration], capsys, "configurations 0..4")


def test_library_errors_are_typed(tmp_path):
    with pytest.raises(ImageNetLayoutError, match="does not exist"):
        iirc_imagenet(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="variant"):
        iirc_imagenet(tmp_path, "medium")


def test_real_command_exits_non_zero_with_the_message(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mile_cl.benchmarks", "imagenet",
                           "--data-root", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
