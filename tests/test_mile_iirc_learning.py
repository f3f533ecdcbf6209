"""The protocol's MILe default gives superclasses back where ER loses them (ResNet-32, IIRC).

Three cells of bench/mile_iirc_sweep.py (the IIRC protocol, ER, ResNet-32, intask selection,
the sweep's scale on the harder synthetic stand-in; seeds 0, 1, 2 of task order 0). Final
superclass recall on subclass test samples, measured on this project's 2-core CPU
(AMD EPYC, AVX512; ``ATEN_CPU_CAPABILITY=avx2`` gave the same numbers as the default):

    threads  arm                             seed 0  seed 1  seed 2   mean
    1        er                               0.000   0.000   0.000   0.000
    1        er+MILe[gt,prev-teacher,...]     0.600   0.500   0.500   0.533
    2        er                               0.000   0.000   0.000   0.000
    2        er+MILe[gt,prev-teacher,...]     0.100   0.500   0.500   0.367

One cell moves by 0.5 between one and two threads (floating-point reduction order), so the
test asserts on the mean over the cells, with a margin below the smallest mean gain seen
(0.367): a gain above 0.25. It does not compare pw-JS between the arms (the per-cell
difference changes sign with the thread count); it only asserts that MILe's runs learn
(mean final pw-JS above 0.08; measured 0.166 and 0.163). What carries the gain (the old
model's labels, not the generations) is measured in docs/mile_on_iirc.md.
"""
import statistics

import pytest
from scripts import load_script

from protocols.config import MILE_DEFAULTS, as_mile_config

mile_iirc_sweep = load_script("bench/mile_iirc_sweep.py")
SEEDS = (0, 1, 2)


def test_the_sweeps_arm_is_the_protocols_default():
    mile, prior_bias = mile_iirc_sweep.ARMS["gt,prev-teacher"]
    assert as_mile_config(mile) == MILE_DEFAULTS and not prior_bias


@pytest.fixture(scope="module")
def finals():
    return {(arm, seed): mile_iirc_sweep.run_one(arm, "intask", seed=seed, task_order=0)["final"]
            for arm in ("er", "gt,prev-teacher") for seed in SEEDS}


@pytest.mark.filterwarnings("ignore")          # Avalanche's logger and deprecation notices
def test_default_mile_raises_mean_superclass_recall_over_er(finals):
    gains = [finals["gt,prev-teacher", s]["superclass_recall"]
             - finals["er", s]["superclass_recall"] for s in SEEDS]
    assert statistics.fmean(gains) > 0.25, (gains, finals)


@pytest.mark.filterwarnings("ignore")
def test_default_mile_runs_learn(finals):
    pw_jaccard = [finals["gt,prev-teacher", s]["pw_jaccard"] for s in SEEDS]
    assert statistics.fmean(pw_jaccard) > 0.08, pw_jaccard
