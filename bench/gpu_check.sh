#!/usr/bin/env bash
# The first session with a GPU runs this before anything else, in one call:
#   bash bench/gpu_check.sh            # CUDA tests, host-sync check, throughput, memory
#   bash bench/gpu_check.sh --dry-run  # the same stages on the CPU, tiny (tests/ runs it)
# On a device machine without a package index, install Avalanche & co. from carried wheels
# first and put wandb's stub on PYTHONPATH (see the device tool's README).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=""
[[ "${1:-}" == "--dry-run" ]] && dry="--dry-run"
status=0
echo "== 1. CUDA-only tests"
if [[ -n "$dry" ]]; then
    echo "(dry run: would run python -m pytest -q tests/test_device_data.py -k cuda)"
else
    python -m pytest -q tests/test_device_data.py -k cuda || status=1
fi
echo "== 2. host synchronisation and peak memory, every strategy with and without MILe"
python bench/gpu_check.py $dry || status=1
echo "== 3. throughput"
if [[ -n "$dry" ]]; then
    python bench/throughput.py --device cpu --small --only protocol_device \
        --iters 1 --warm 1 --out "$(mktemp -d)/throughput.json" || status=1
else
    python bench/throughput.py --device cuda || status=1
fi
echo "== gpu_check: $([[ $status == 0 ]] && echo ok || echo FAILED)"
exit $status
