"""Does MILe raise superclass recall on subclass samples? Replay +/- MILe variants on synthetic
IIRC.

Small CNN, Avalanche Replay, the synthetic IIRC stand-in; prints, per variant and seed, the
final union-average pw-JS and the hierarchy diagnostics averaged over tasks (where defined).

    python bench/mile_variants.py --seeds 0 1 2
"""
import argparse
import json
import math
import time

import torch
from avalanche.training import Replay
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from mile_cl.avalanche_metrics import iirc_metrics
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.losses import SeenClassesBCE, SeenClassesPlugin
from mile_cl.plugin import MILePlugin, init_output_bias

VARIANTS = {
    "replay": None,
    "mile_e1_e1": dict(interactive_epochs=1, imitation_epochs=1),
    "mile_e2_e1": dict(interactive_epochs=2, imitation_epochs=1),
    "mile_e1_e1_gt": dict(interactive_epochs=1, imitation_epochs=1, keep_ground_truth=True),
    "mile_e2_e1_open": dict(interactive_epochs=2, imitation_epochs=1, start_with_imitation=True),
    "mile_e1_e1_gt_open": dict(interactive_epochs=1, imitation_epochs=1, keep_ground_truth=True,
                               start_with_imitation=True),
}


def small_cnn(n_out):
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                          nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, n_out))
    init_output_bias(model[-1])
    return model


def make_benchmark(seed):
    return synthetic_iirc(n_superclasses=4, subclasses_per_superclass=3, n_orphans=2,
                          classes_per_task=3, n_train_per_class=60, n_test_per_class=20,
                          seed=seed)


def run(variant, seed, epochs=20, lr=0.5, mem_size=200):
    torch.manual_seed(seed)
    benchmark = make_benchmark(seed)
    n = len(benchmark.class_names)
    model = small_cnn(n)
    metric = iirc_metrics(benchmark)
    plugins = [SeenClassesPlugin()]
    if VARIANTS[variant] is not None:
        plugins.insert(0, MILePlugin(**VARIANTS[variant]))
    strategy = Replay(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
                      SeenClassesBCE(n), mem_size=mem_size, train_mb_size=32, train_epochs=epochs,
                      eval_mb_size=256, plugins=plugins,
                      evaluator=EvaluationPlugin(*metric, loggers=[]))
    for j, experience in enumerate(benchmark.train_stream):
        strategy.train(experience)
        strategy.eval(benchmark.test_stream[: j + 1])
    results = metric[0].results["test"].as_dict()
    def mean_defined(values):
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")
    return {
        "final_pw_jaccard": results["union_avg"]["pw_jaccard"][-1],
        "mean_pw_jaccard": mean_defined(results["union_avg"]["pw_jaccard"]),
        **{f"mean_{k}": mean_defined(v) for k, v in results["hierarchy"].items()},
        **{f"final_{k}": results["hierarchy"][k][-1] for k in results["hierarchy"]},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = {}
    for variant in args.variants:
        for seed in args.seeds:
            start = time.time()
            table[f"{variant}/{seed}"] = row = run(variant, seed, epochs=args.epochs)
            print(variant, seed, f"{time.time() - start:.0f}s",
                  json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
