"""IIRC's metrics as an Avalanche plugin metric.

Avalanche's accuracy / forgetting / BWT take the argmax of outputs and targets: silently
wrong for multi-label IIRC. ``IIRCMetric`` applies IIRC's rule instead (predict the seen
classes whose logit is > 0, mask the complete targets to the seen classes) and reports the
per-sample metrics of ``mile_cl.metrics``::

    evaluator = EvaluationPlugin(*iirc_metrics(benchmark), loggers=[InteractiveLogger()])
    for j, experience in enumerate(benchmark.train_stream):
        strategy.train(experience)
        strategy.eval(benchmark.test_stream[: j + 1])

Logged names (Avalanche's ``metric/phase/stream[/Exp]`` scheme, no task label: IIRC is
class-incremental, every item has t = 0), with x = j, the index of the last trained task,
so a TensorBoard curve is the paper's plot:

- ``pwJS_Exp/eval_phase/test_stream/Exp003``: R[j][3], mean pw-JS over test task 3, after
  each evaluated experience; likewise ``JS_Exp``, ``StrictAcc_Exp``, ``Precision_Exp``,
  ``Recall_Exp``, ``F1_Exp``.
- ``pwJS_UnionAvg/eval_phase/test_stream``: per-sample mean over the de-duplicated union of
  test tasks 0..j (the paper's curve), at the end of the evaluation; likewise ``JS_UnionAvg``...
- ``pwJS_Forgetting/eval_phase/test_stream``: mean drop of R[.][k] from its best, old k < j.
- ``Hierarchy_SuperclassRecall``, ``Hierarchy_SubclassRecall``,
  ``Hierarchy_WrongAssociation`` (``/eval_phase/test_stream``), over the union.

A value that is undefined (NaN: forgetting at j = 0, hierarchy rates with no eligible
sample, a union that misses a test task) is not logged; it stays NaN in ``results``.
``metric.results[stream_name]`` (e.g. ``"test"``) is an ``mile_cl.metrics.IIRCResults``
holding the full R matrices and curves; ``.as_dict()`` is ready for JSON.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Optional, Sequence

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import (
    default_metric_name_template,
    generic_get_metric_name,
)
from torch import Tensor

from mile_cl.metrics import (
    HIERARCHY_NAMES,
    METRIC_NAMES,
    ExperienceSums,
    IIRCResults,
    parents_from_hierarchy,
    predict,
)

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

# Python name -> the short name used in logs
LOG_NAMES = {
    "jaccard": "JS",
    "pw_jaccard": "pwJS",
    "strict_accuracy": "StrictAcc",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "superclass_recall": "Hierarchy_SuperclassRecall",
    "subclass_recall": "Hierarchy_SubclassRecall",
    "wrong_association": "Hierarchy_WrongAssociation",
}


def metric_name(base: str, stream: str, experience: Optional[int] = None) -> str:
    """``base/eval_phase/<stream>_stream[/ExpNNN]``, formatted by Avalanche's own template."""
    return generic_get_metric_name(
        default_metric_name_template,
        {
            "metric_name": base,
            "phase_name": "eval",
            "stream_name": stream,
            "experience_id": experience,
            "task_label": None,
        },
    )


class IIRCMetric(PluginMetric[dict]):
    """All IIRC metrics from one pass over the evaluation outputs (see the module doc).

    ``num_seen_after[j]`` is the number of classes seen after training task j (the seen
    classes are the prefix 0..n-1 of the global ids). The metric follows the index of the
    last trained task in ``trained_task``, the largest ``current_experience`` it has seen
    reach ``before_training_exp``; a strategy that trains on several experiences at once
    (JointTraining) must set ``trained_task`` itself. Evaluations before any training
    report nothing: no class is seen yet.
    """

    def __init__(
        self,
        num_seen_after: Sequence[int],
        *,
        parents: Optional[Tensor] = None,
        metric_names: Sequence[str] = METRIC_NAMES,
        forgetting_metrics: Sequence[str] = ("pw_jaccard",),
        log_experiences: bool = True,
    ):
        super().__init__()
        unknown = set(metric_names) - set(METRIC_NAMES)
        if unknown:
            raise ValueError(
                f"unknown metric names {sorted(unknown)}; choose from {METRIC_NAMES}"
            )
        if not set(forgetting_metrics) <= set(metric_names):
            raise ValueError("forgetting_metrics must be a subset of metric_names")
        self.num_seen_after = list(num_seen_after)
        self.parents = parents
        self.metric_names = tuple(metric_names)
        self.forgetting_metrics = tuple(forgetting_metrics)
        self.log_experiences = log_experiences

        self.trained_task: Optional[int] = None
        self.results: dict[str, IIRCResults] = {}  # stream name -> results
        # state of the evaluation in progress
        self._evaluated: dict[str, dict[int, ExperienceSums]] = {}  # stream -> k -> sums
        self._current: Optional[ExperienceSums] = None

    # ---- Avalanche's Metric protocol
    def result(self) -> dict[str, IIRCResults]:
        return self.results

    def reset(self) -> None:
        """Forget the evaluation in progress (stored results stay)."""
        self._evaluated = {}
        self._current = None

    # ---- callbacks
    def before_training_exp(self, strategy: "SupervisedTemplate"):
        # Seen classes never shrink, so a replayed/re-trained old experience keeps j.
        j = strategy.experience.current_experience
        self.trained_task = j if self.trained_task is None else max(self.trained_task, j)

    def before_eval(self, strategy: "SupervisedTemplate"):
        # One eval call = one model: union averages only combine experiences of one call.
        self.reset()
        warn_single_label_metrics(getattr(strategy, "evaluator", None))

    def before_eval_exp(self, strategy: "SupervisedTemplate"):
        self._current = ExperienceSums(self.metric_names)

    def after_eval_iteration(self, strategy: "SupervisedTemplate"):
        if self.trained_task is None:
            return None
        pred = predict(strategy.mb_output, self.num_seen_after[self.trained_task])
        self._current.update(pred, strategy.mb_y, self.parents)
        return None

    def after_eval_exp(self, strategy: "SupervisedTemplate"):
        if self.trained_task is None:
            return None
        stream = strategy.experience.origin_stream.name
        k = strategy.experience.current_experience
        self._evaluated.setdefault(stream, {})[k] = self._current
        if not self.log_experiences:
            return None
        values = [
            self._value(metric_name(f"{LOG_NAMES[m]}_Exp", stream, k), self._current.mean(m))
            for m in self.metric_names
        ]
        return [v for v in values if v is not None]

    def after_eval(self, strategy: "SupervisedTemplate"):
        values = []
        for stream, sums_by_task in self._evaluated.items():
            results = self.results.setdefault(
                stream, IIRCResults(len(self.num_seen_after), self.metric_names)
            )
            j = self.trained_task
            results.record(j, sums_by_task)
            for m in self.metric_names:
                name = metric_name(f"{LOG_NAMES[m]}_UnionAvg", stream)
                values.append(self._value(name, results.union_avg[m][j]))
            for m in self.forgetting_metrics:
                name = metric_name(f"{LOG_NAMES[m]}_Forgetting", stream)
                values.append(self._value(name, results.forgetting[m][j]))
            if self.parents is not None:
                for h in HIERARCHY_NAMES:
                    name = metric_name(LOG_NAMES[h], stream)
                    values.append(self._value(name, results.hierarchy[h][j]))
        self.reset()
        return [v for v in values if v is not None]

    def _value(self, name: str, value) -> Optional[MetricValue]:
        value = float(value)
        if math.isnan(value):  # undefined: leave a gap rather than log NaN
            return None
        return MetricValue(self, name, value, self.trained_task)

    def __str__(self) -> str:
        return "IIRCMetric"


def _num_seen_after(benchmark) -> list[int]:
    """Seen classes after each task: a mile_cl benchmark's ``num_seen_after``; for any other
    benchmark, len(seen_classes(j)) per task, checking the prefix property the masks rely on."""
    if hasattr(benchmark, "num_seen_after"):
        return list(benchmark.num_seen_after)
    counts = []
    for j in range(len(benchmark.tasks)):
        seen = list(benchmark.seen_classes(j))
        if seen != list(range(len(seen))):
            raise ValueError(
                f"benchmark.seen_classes({j}) is not 0..{len(seen) - 1}: the IIRC metrics "
                "need global ids in order of first appearance (seen classes = a prefix)"
            )
        counts.append(len(seen))
    return counts


def iirc_metrics(benchmark, **kwargs) -> list[IIRCMetric]:
    """Plugin metrics for ``EvaluationPlugin(*iirc_metrics(benchmark), loggers=...)``.

    Reads ``benchmark.tasks``, ``seen_classes(j)`` and ``parents`` (or builds the parent map
    from ``class_names`` and ``hierarchy``); keywords go to ``IIRCMetric`` (pass
    ``parents=None`` to turn the hierarchy diagnostics off). The returned list holds one
    ``IIRCMetric``: keep it to read ``.results`` after the run.
    """
    if "parents" not in kwargs:
        parents = getattr(benchmark, "parents", None)
        if parents is None and hasattr(benchmark, "hierarchy"):
            parents = parents_from_hierarchy(benchmark.class_names, benchmark.hierarchy)
        kwargs["parents"] = parents
    return [IIRCMetric(_num_seen_after(benchmark), **kwargs)]


# ------------------------------------------------------- Avalanche's single-label metrics

class SingleLabelMetricWarning(UserWarning):
    """An Avalanche metric that reads one label per sample is evaluating multi-hot targets:
    its numbers look plausible and are wrong (docs/avalanche_multilabel.md)."""


# Avalanche 0.6.0's metric modules that take the argmax of a multi-hot target (accuracy, and
# what is built on it: class accuracy, AMCA, confusion matrix, top-k, forgetting, BWT,
# forward transfer).
SINGLE_LABEL_METRIC_MODULES = tuple(
    f"avalanche.evaluation.metrics.{name}"
    for name in ("accuracy", "class_accuracy", "amca", "confusion_matrix", "topk_acc",
                 "forgetting_bwt", "forward_transfer"))


def single_label_metrics(evaluator) -> list[str]:
    """Names of the metrics of an ``EvaluationPlugin`` that assume one label per sample."""
    metrics = getattr(evaluator, "metrics", None) or ()
    return [type(m).__name__ for m in metrics
            if type(m).__module__ in SINGLE_LABEL_METRIC_MODULES]


def warn_single_label_metrics(evaluator) -> None:
    """``SingleLabelMetricWarning``, once per evaluator, if it holds a single-label metric."""
    if evaluator is None or getattr(evaluator, "_mile_cl_checked", False):
        return
    evaluator._mile_cl_checked = True
    names = single_label_metrics(evaluator)
    if names:
        warnings.warn(
            f"the EvaluationPlugin holds Avalanche metrics that take the argmax of the target "
            f"({', '.join(names)}): with IIRC's multi-hot targets their numbers are wrong. "
            "Use mile_cl.avalanche_metrics.iirc_metrics(benchmark) instead",
            SingleLabelMetricWarning, stacklevel=3)
