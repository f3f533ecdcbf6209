"""bench/gpu_check.sh, the first GPU session's script, runs end to end in its dry mode."""
import subprocess
from pathlib import Path

import strategies

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_covers_every_strategy_with_and_without_mile():
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in strategies.NAMES:
        for label in (name, name + "+mile"):
            assert f"sync check {label:<24} ok" in done.stdout, label
    assert f"0 of {2 * len(strategies.NAMES)} strategy checks failed" in done.stdout
    assert "protocol_device" in done.stdout and "== gpu_check: ok" in done.stdout
