"""Avalanche training metrics that show what MILePlugin is doing.

Pass them to the evaluator next to the others: `EvaluationPlugin(*mile_metrics(), ...)`.
Each one reads the MILePlugin found in `strategy.plugins` and emits once per training epoch
(x = training iterations so far), so InteractiveLogger, TextLogger and TensorboardLogger show
them and `evaluator.get_all_metrics()` holds them:

- `MILe_PseudoLabelCardinality`: mean number of positive pseudo-labels per sample.
- `MILe_PseudoLabelAgreement`: mean per-sample Jaccard |P & G| / |P | G| between the
  pseudo-labels P and the minibatch's ground truth G, over the seen classes (1 when both are
  empty). Training ground truth is incomplete (one label per IIRC sample), so a teacher that
  adds a true superclass lowers it: read it as "how far the targets moved", not accuracy.
- `MILe_Generations`: generations completed so far in the current experience.

The two pseudo-label metrics average over the imitation steps of the epoch and emit nothing
for an epoch without one.
"""
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name

from mile_cl.metrics import jaccard
from mile_cl.plugin import MILePlugin


def _mile_plugin(strategy) -> MILePlugin:
    for plugin in strategy.plugins:
        if isinstance(plugin, MILePlugin):
            return plugin
    raise ValueError("the MILe metrics need a MILePlugin among the strategy's plugins")


class _EpochMetric(PluginMetric[float]):
    name = ""

    def __str__(self):
        return self.name

    def _emit(self, strategy, value):
        name = get_metric_name(self, strategy, add_experience=False, add_task=False)
        return [MetricValue(self, name, value, strategy.clock.train_iterations)]


class _ImitationMean(_EpochMetric):
    """Mean of a per-sample statistic of the pseudo-labels over one epoch's imitation steps."""

    def __init__(self):
        super().__init__()
        self.reset()

    def per_sample(self, pseudo, ground_truth):
        raise NotImplementedError

    def reset(self):
        self._sum, self._count = 0.0, 0

    def result(self):
        return float(self._sum / self._count) if self._count else None

    def before_training_epoch(self, strategy):
        self.reset()

    def after_training_iteration(self, strategy):
        plugin = _mile_plugin(strategy)
        if plugin.last_pseudo_labels is None:
            return
        seen = slice(0, plugin.num_seen)
        pseudo = plugin.last_pseudo_labels[:, seen] != 0
        ground_truth = plugin.last_ground_truth[:, seen] != 0
        values = self.per_sample(pseudo, ground_truth)
        self._sum = self._sum + values.sum()  # stays on the device: no sync per step
        self._count += len(values)

    def after_training_epoch(self, strategy):
        if self._count:
            return self._emit(strategy, self.result())


class PseudoLabelCardinality(_ImitationMean):
    name = "MILe_PseudoLabelCardinality"

    def per_sample(self, pseudo, ground_truth):
        return pseudo.sum(1).float()


class PseudoLabelAgreement(_ImitationMean):
    name = "MILe_PseudoLabelAgreement"

    def per_sample(self, pseudo, ground_truth):
        return jaccard(pseudo, ground_truth, both_empty=1.0)   # two empty sets agree


class Generations(_EpochMetric):
    name = "MILe_Generations"

    def __init__(self):
        super().__init__()
        self._value = None

    def reset(self):
        self._value = None

    def result(self):
        return self._value

    def after_training_epoch(self, strategy):
        self._value = _mile_plugin(strategy).generation
        return self._emit(strategy, self._value)


def mile_metrics(cardinality=True, agreement=True, generations=True) -> list:
    """The MILe metrics to hand to an EvaluationPlugin."""
    return [
        metric()
        for wanted, metric in [
            (cardinality, PseudoLabelCardinality),
            (agreement, PseudoLabelAgreement),
            (generations, Generations),
        ]
        if wanted
    ]
