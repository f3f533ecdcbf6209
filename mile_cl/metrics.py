"""IIRC's multi-label metrics, as pure tensor functions (the Avalanche wrappers live in
``mile_cl.avalanche_metrics``).

Per sample, with P the predicted label set and Y the target label set, both restricted to
the classes seen so far (bool tensors [N, num_seen]):

====================  ====================================  ==============================
function              formula                               when a denominator is 0
====================  ====================================  ==============================
``jaccard``           |Y n P| / |Y u P|                      0   (Y and P both empty;
                                                            ``both_empty=`` names another)
``pw_jaccard``        |Y n P| / |Y u P|  *  |Y n P| / |P|    0   (P empty)
``strict_accuracy``   1[P == Y]                              --  (both empty: P == Y, so 1)
``precision``         |Y n P| / |P|                          0   (P empty)
``recall``            |Y n P| / |Y|                          0   (Y empty)
``f1``                2 |Y n P| / (|P| + |Y|)                0   (Y and P both empty)
====================  ====================================  ==============================

Empty sets, one rule: a ratio whose denominator is 0 is 0 (its numerator |Y n P| is then 0
too). That is the limit of the IIRC reference's ``|Y n P| / (|P| + 1e-8)`` in pw-JS, applied
to every ratio, so no metric ever returns NaN and ``pw_jaccard == jaccard * precision`` holds
everywhere. Strict accuracy is the one exception because it is an equality test, not a ratio:
two empty sets are equal (the reference's ``strict_accuracy`` also gives 1). In the IIRC
protocol Y is never empty: a test sample of task k <= j carries its task-k label, which is
seen after task j. Y is empty only off-protocol (e.g. evaluating a future task).

``f1`` is the harmonic mean of precision and recall: 2 (h/p)(h/y) / (h/p + h/y) = 2h / (p + y)
for h = |Y n P| > 0, and both sides are 0 when h = 0. Precision, recall and F1 are not
defined by the IIRC reference; ours are per-sample and averaged over samples, like JS.

Below the per-sample functions: the IIRC prediction rule (``predict``, ``mask_targets``), the
hierarchy diagnostics, and the protocol's bookkeeping (the R matrices, the union average over
de-duplicated test samples, forgetting): ``ExperienceSums`` and ``IIRCResults``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor

METRIC_NAMES = ("jaccard", "pw_jaccard", "strict_accuracy", "precision", "recall", "f1")
HIERARCHY_NAMES = ("superclass_recall", "subclass_recall", "wrong_association")


# --------------------------------------------------------------------------- validation


def _check_bool_2d(name: str, tensor: Tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != torch.bool:
        raise TypeError(
            f"{name} has dtype {tensor.dtype}; the metrics take bool label sets. Build them "
            "with mile_cl.metrics.predict(logits, num_seen) and mask_targets(targets, "
            "num_seen), or compare yourself (e.g. logits[:, :num_seen] > 0)"
        )
    if tensor.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D [num_samples, num_seen_classes], got shape "
            f"{tuple(tensor.shape)}; for a single sample use {name}.unsqueeze(0)"
        )


def _check_pred_target(pred: Tensor, target: Tensor) -> None:
    _check_bool_2d("pred", pred)
    _check_bool_2d("target", target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same "
            "shape [num_samples, num_seen_classes]: mask both to the same seen classes "
            "(predict(logits, num_seen), mask_targets(targets, num_seen))"
        )


# ------------------------------------------------------------------ per-sample metrics


class SetCounts(NamedTuple):
    """Per-sample set sizes [N], as floats (exact up to 2**24, so no casts in the formulas):
    everything the metrics need."""

    hits: Tensor  # |Y n P|
    predicted: Tensor  # |P|
    labelled: Tensor  # |Y|

    @property
    def union(self) -> Tensor:  # |Y u P| by inclusion-exclusion: no [N, C] union tensor
        return self.labelled + self.predicted - self.hits


def _count_dtype(num_classes: int) -> torch.dtype:
    """The narrowest integer type that holds a count up to C."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if num_classes <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def _count(mask: Tensor, dtype: torch.dtype) -> Tensor:
    # A bool tensor is bytes of 0/1: viewed as uint8 (no copy) and summed in a narrow dtype,
    # the row sum stays vectorised; on CPU this is ~4x faster than bool.sum() into int64.
    return mask.view(torch.uint8).sum(dim=1, dtype=dtype).to(torch.get_default_dtype())


def set_counts(pred: Tensor, target: Tensor) -> SetCounts:
    """|Y n P|, |P| and |Y| per sample, from bool [N, C] tensors."""
    _check_pred_target(pred, target)
    dtype = _count_dtype(pred.shape[1])
    return SetCounts(
        hits=_count(pred & target, dtype),
        predicted=_count(pred, dtype),
        labelled=_count(target, dtype),
    )


def _ratio(hits: Tensor, denominator: Tensor) -> Tensor:
    """hits / denominator, and 0 where the denominator is 0 (the module's rule).

    Each denominator used here is 0 only when |Y n P| is 0 as well, so dividing by
    max(denominator, 1) yields exactly that 0 with no branch.
    """
    return hits / denominator.clamp(min=1)


# The formulas, on counts, so that several metrics can share one pass over [N, C].
def _jaccard(c: SetCounts) -> Tensor:
    return _ratio(c.hits, c.union)


def _precision(c: SetCounts) -> Tensor:
    return _ratio(c.hits, c.predicted)


def _pw_jaccard(c: SetCounts) -> Tensor:
    # precision is 0 when P is empty, which gives the "0 when P is empty" rule for free
    return _jaccard(c) * _precision(c)


def _strict_accuracy(c: SetCounts) -> Tensor:
    # P == Y  <=>  |Y n P| == |P| == |Y|: no second pass over [N, C]
    equal = (c.hits == c.predicted) & (c.hits == c.labelled)
    return equal.to(torch.get_default_dtype())


def _recall(c: SetCounts) -> Tensor:
    return _ratio(c.hits, c.labelled)


def _f1(c: SetCounts) -> Tensor:
    return _ratio(2 * c.hits, c.predicted + c.labelled)


_FROM_COUNTS: dict[str, Callable[[SetCounts], Tensor]] = {
    "jaccard": _jaccard,
    "pw_jaccard": _pw_jaccard,
    "strict_accuracy": _strict_accuracy,
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
}


def jaccard(pred: Tensor, target: Tensor, *, both_empty: float = 0.0) -> Tensor:
    """Jaccard similarity JS = |Y n P| / |Y u P| per sample; ``both_empty`` where Y and P are
    both empty: 0 by default (the module's rule, IIRC's JS), 1 where two empty sets should
    count as agreeing (MILe's pseudo-label agreement, ``mile_cl.mile_metrics``)."""
    counts = set_counts(pred, target)
    if both_empty == 0:
        return _jaccard(counts)
    return torch.where(counts.union > 0, _jaccard(counts), both_empty)


def pw_jaccard(pred: Tensor, target: Tensor) -> Tensor:
    """Precision-weighted Jaccard pw-JS = JS * |Y n P| / |P| per sample; 0 when P is empty.

    IIRC's headline metric: plain JS rewards predicting many labels less harshly than pw-JS.
    """
    return _pw_jaccard(set_counts(pred, target))


def strict_accuracy(pred: Tensor, target: Tensor) -> Tensor:
    """1[P == Y] per sample (every seen label right, none extra); 1 when both are empty."""
    return _strict_accuracy(set_counts(pred, target))


def precision(pred: Tensor, target: Tensor) -> Tensor:
    """|Y n P| / |P| per sample; 0 when P is empty."""
    return _precision(set_counts(pred, target))


def recall(pred: Tensor, target: Tensor) -> Tensor:
    """|Y n P| / |Y| per sample; 0 when Y is empty (no seen label: only off-protocol)."""
    return _recall(set_counts(pred, target))


def f1(pred: Tensor, target: Tensor) -> Tensor:
    """Harmonic mean of precision and recall = 2|Y n P| / (|P| + |Y|); 0 when both are 0."""
    return _f1(set_counts(pred, target))


def all_scores(
    pred: Tensor, target: Tensor, names: Sequence[str] = METRIC_NAMES
) -> dict[str, Tensor]:
    """Several per-sample metrics at once ({name: float [N]}), counting the sets only once."""
    unknown = set(names) - set(_FROM_COUNTS)
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}; choose from {METRIC_NAMES}")
    counts = set_counts(pred, target)
    return {name: _FROM_COUNTS[name](counts) for name in names}


# ---------------------------------------------------------------- the prediction rule


def _check_num_seen(num_seen: int, num_classes: int) -> None:
    if isinstance(num_seen, bool) or not isinstance(num_seen, int):
        raise TypeError(f"num_seen must be an int, got {type(num_seen).__name__}")
    if num_seen > num_classes:
        raise ValueError(
            f"num_seen={num_seen} is a seen-class set larger than C={num_classes} (the "
            "number of output units / label columns); pass len(benchmark.seen_classes(j))"
        )
    if num_seen < 1:
        raise ValueError(f"num_seen must be at least 1 (no class seen yet?), got {num_seen}")


def predict(logits: Tensor, num_seen: int, threshold: float = 0.0) -> Tensor:
    """IIRC's prediction set: bool [N, num_seen] = logits[:, :num_seen] > threshold.

    Logit > 0 is sigmoid > 0.5. Global ids are in order of first appearance, so the seen
    classes are the prefix 0..num_seen-1; outputs of unseen classes are dropped, never counted
    as false positives.
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(
            "logits must be a floating-point tensor [N, C] (the model's raw outputs), got "
            f"{logits.dtype if isinstance(logits, Tensor) else type(logits).__name__}"
        )
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
    _check_num_seen(num_seen, logits.shape[1])
    return logits[:, :num_seen] > threshold


def mask_targets(targets: Tensor, num_seen: int) -> Tensor:
    """Target sets over the seen classes: bool [N, num_seen] from multi-hot targets [N, C].

    Accepts bool or numeric multi-hot (1 = label); numeric values are read as "> 0.5".
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.dim() != 2:
        raise ValueError(
            f"targets must be 2-D multi-hot [N, C], got shape {tuple(targets.shape)}"
        )
    _check_num_seen(num_seen, targets.shape[1])
    seen = targets[:, :num_seen]
    return seen if seen.dtype == torch.bool else seen > 0.5


# ------------------------------------------------------------- hierarchy diagnostics


def parents_from_hierarchy(
    class_names: Sequence[str], hierarchy: Mapping[str, Sequence[str]]
) -> Tensor:
    """LongTensor [C]: the global id of each label's superclass, -1 if it has none.

    ``hierarchy`` is {superclass name: [subclass names]}; names absent from ``class_names``
    are ignored (a benchmark may use part of a hierarchy).
    """
    index = {name: i for i, name in enumerate(class_names)}
    parents = torch.full((len(class_names),), -1, dtype=torch.long)
    for superclass, subclasses in hierarchy.items():
        if superclass not in index:
            continue
        for subclass in subclasses:
            if subclass in index:
                parents[index[subclass]] = index[superclass]
    return parents


def _check_parents(parents: Tensor, num_classes: int) -> None:
    if not isinstance(parents, Tensor) or parents.dtype != torch.long or parents.dim() != 1:
        raise TypeError("parents must be a 1-D LongTensor [C] of parent ids (-1: no parent)")
    if parents.shape[0] != num_classes:
        raise ValueError(
            f"parents has {parents.shape[0]} entries but targets have {num_classes} label "
            "columns: give one parent id per label (global id order)"
        )
    if bool(((parents < -1) | (parents >= num_classes)).any()):
        raise ValueError(f"parents must hold ids in 0..{num_classes - 1}, or -1 for none")
    if bool((parents == torch.arange(num_classes, device=parents.device)).any()):
        raise ValueError("a label cannot be its own parent (parents[c] == c)")


class HierarchyHits(NamedTuple):
    """Per-sample bool tensors [N] behind the hierarchy diagnostics."""

    eligible: Tensor  # has a seen subclass label AND that subclass's (seen) superclass label
    superclass: Tensor  # eligible, and P holds its superclass ("a polar bear is still a bear")
    subclass: Tensor  # eligible, and P holds its subclass
    wrong_association: Tensor  # eligible, and P holds a seen sibling subclass not in Y


def hierarchy_hits(pred: Tensor, targets: Tensor, parents: Tensor) -> HierarchyHits:
    """Which samples the hierarchy diagnostics count, and what their predictions got right.

    pred: bool [N, S] over the S seen classes; targets: complete multi-hot [N, C];
    parents: LongTensor [C]. A sample with several (subclass, superclass) pairs (not in IIRC,
    where a sample has one fine label) must get all of them right to count as a hit.
    """
    _check_bool_2d("pred", pred)
    num_seen = pred.shape[1]
    target = mask_targets(targets, num_seen)
    if target.shape[0] != pred.shape[0]:
        raise ValueError(f"pred has {pred.shape[0]} samples but targets {target.shape[0]}")
    _check_parents(parents, targets.shape[1])

    parent = parents[:num_seen].to(pred.device)
    has_seen_parent = (parent >= 0) & (parent < num_seen)
    parent_column = torch.where(has_seen_parent, parent, torch.zeros_like(parent))
    # [N, S]: c is a label of the sample and so is parent(c)
    paired_sub = target & target[:, parent_column] & has_seen_parent
    # [N, S]: p is the superclass of one of the sample's paired subclasses
    paired_super = torch.zeros(pred.shape, dtype=torch.int32, device=pred.device)
    paired_super.index_add_(1, parent_column, paired_sub.to(torch.int32))
    paired_super = paired_super > 0
    # [N, S]: c is a seen subclass of one of those superclasses but not the sample's label
    sibling = paired_super[:, parent_column] & has_seen_parent & ~target

    eligible = paired_sub.any(dim=1)
    return HierarchyHits(
        eligible=eligible,
        superclass=eligible & ~(paired_super & ~pred).any(dim=1),
        subclass=eligible & ~(paired_sub & ~pred).any(dim=1),
        wrong_association=eligible & (pred & sibling).any(dim=1),
    )


def hierarchy_diagnostics(pred: Tensor, targets: Tensor, parents: Tensor) -> dict[str, float]:
    """Fractions of eligible samples (see ``HierarchyHits``): superclass_recall,
    subclass_recall, wrong_association. NaN when no sample is eligible (nothing to measure:
    e.g. before any subclass is seen); skip NaN when averaging (torch.nanmean)."""
    hits = hierarchy_hits(pred, targets, parents)
    num_eligible = int(hits.eligible.sum())
    if num_eligible == 0:
        return {name: math.nan for name in HIERARCHY_NAMES}
    return {
        "superclass_recall": int(hits.superclass.sum()) / num_eligible,
        "subclass_recall": int(hits.subclass.sum()) / num_eligible,
        "wrong_association": int(hits.wrong_association.sum()) / num_eligible,
    }


# ------------------------------------------------------------ IIRC evaluation bookkeeping


def union_weights(target: Tensor) -> Tensor:
    """1 / |Y n seen| per sample (float64 [N]); 0 for a sample with no seen label.

    Test task k holds every test sample with a label in task k, each label belongs to one
    task, and a sample's labels are in distinct tasks (a superclass comes strictly before
    its subclasses). So after task j a sample sits in exactly |Y n seen(j)| of the test
    tasks 0..j, with the same score in each (one model, same masks). Weighting each
    (task, sample) score by 1/|Y n seen(j)| counts every sample of the union once, no ids.
    """
    _check_bool_2d("target", target)
    labelled = target.sum(dim=1, dtype=torch.int64).to(torch.float64)
    return torch.where(labelled > 0, 1.0 / labelled.clamp(min=1), torch.zeros_like(labelled))


# result name -> HierarchyHits field
_HIT_FIELD = {
    "superclass_recall": "superclass",
    "subclass_recall": "subclass",
    "wrong_association": "wrong_association",
}


@dataclass
class ExperienceSums:
    """Running sums over the samples of one evaluated experience (test task), for one model.

    Feed it batches with ``update``; ``mean(name)`` is that experience's R entry. The
    ``union_*`` and ``hierarchy_*`` sums carry the 1/|Y n seen| weights that
    ``union_average`` and ``hierarchy_rates`` combine across experiences.
    """

    metric_names: Sequence[str] = METRIC_NAMES
    num_samples: int = 0
    num_without_seen_label: int = 0
    score_sums: dict[str, float] = field(default_factory=dict)
    union_weight: float = 0.0
    union_score_sums: dict[str, float] = field(default_factory=dict)
    hierarchy_weight: float = 0.0
    hierarchy_sums: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.metric_names:
            self.score_sums.setdefault(name, 0.0)
            self.union_score_sums.setdefault(name, 0.0)
        for name in HIERARCHY_NAMES:
            self.hierarchy_sums.setdefault(name, 0.0)

    def update(self, pred: Tensor, targets: Tensor, parents: Tensor | None = None) -> None:
        """Add a batch: pred bool [N, S]; targets multi-hot [N, C] (complete labels, masked
        here to pred's S seen classes); parents [C] enables the hierarchy sums."""
        _check_bool_2d("pred", pred)
        target = mask_targets(targets, pred.shape[1])
        scores = all_scores(pred, target, self.metric_names)
        weights = union_weights(target)

        self.num_samples += pred.shape[0]
        self.num_without_seen_label += int((weights == 0).sum())
        self.union_weight += float(weights.sum())
        for name, score in scores.items():
            # float64: these sums grow batch after batch; float32 would round each addition
            self.score_sums[name] += float(score.sum(dtype=torch.float64))
            self.union_score_sums[name] += float((score.to(torch.float64) * weights).sum())

        if parents is not None:
            hits = hierarchy_hits(pred, targets, parents)
            self.hierarchy_weight += float((hits.eligible * weights).sum())
            for name in HIERARCHY_NAMES:
                hit = getattr(hits, _HIT_FIELD[name])
                self.hierarchy_sums[name] += float((hit * weights).sum())

    def mean(self, name: str) -> float:
        """Mean of a metric over this experience's samples (NaN if it had none)."""
        return self.score_sums[name] / self.num_samples if self.num_samples else math.nan


def _tasks_up_to(sums_by_task: Mapping[int, ExperienceSums], trained_task: int) -> list:
    """The sums of test tasks 0..j; every one is needed for the de-duplicated union."""
    missing = [k for k in range(trained_task + 1) if k not in sums_by_task]
    if missing:
        raise ValueError(
            f"the union over test tasks 0..{trained_task} needs all of them evaluated with "
            f"the same model; missing {missing} (evaluate test_stream[:{trained_task + 1}])"
        )
    selected = [sums_by_task[k] for k in range(trained_task + 1)]
    for k, sums in enumerate(selected):
        if sums.num_without_seen_label:
            raise ValueError(
                f"test task {k} holds {sums.num_without_seen_label} samples with no label "
                f"seen after task {trained_task}; a test task k <= j always carries a seen "
                "label, so the benchmark's test tasks and seen_classes disagree"
            )
    return selected


def union_average(
    sums_by_task: Mapping[int, ExperienceSums], trained_task: int
) -> dict[str, float]:
    """The IIRC curve's point after task j: per-sample mean of each metric over the
    DE-DUPLICATED union of the test samples of tasks 0..j (not the mean of R[j][0..j]).

    = sum_k sum_i score_i / |Y_i n seen| / sum_k sum_i 1 / |Y_i n seen|, k in 0..j
    (see ``union_weights``; the denominator is the number of distinct samples).
    Tasks k > j in ``sums_by_task`` are ignored.
    """
    selected = _tasks_up_to(sums_by_task, trained_task)
    total_weight = sum(s.union_weight for s in selected)
    names = selected[0].metric_names
    if total_weight == 0:
        return {name: math.nan for name in names}
    return {
        name: sum(s.union_score_sums[name] for s in selected) / total_weight for name in names
    }


def hierarchy_rates(
    sums_by_task: Mapping[int, ExperienceSums], trained_task: int
) -> dict[str, float]:
    """``hierarchy_diagnostics`` over the de-duplicated union of test tasks 0..j; NaN when
    no sample of the union is eligible."""
    selected = _tasks_up_to(sums_by_task, trained_task)
    eligible = sum(s.hierarchy_weight for s in selected)
    if eligible == 0:
        return {name: math.nan for name in HIERARCHY_NAMES}
    return {
        name: sum(s.hierarchy_sums[name] for s in selected) / eligible
        for name in HIERARCHY_NAMES
    }


def forgetting(R: Tensor, trained_task: int) -> float:
    """Mean over old tasks k < j of  max_{i in [k, j-1]} R[i][k] - R[j][k].

    R is [T, T] with NaN where not evaluated; NaN entries are skipped, and a task k with no
    value to compare is left out. NaN when no old task can be compared (always at j = 0).
    """
    j = trained_task
    drops = []
    for k in range(j):
        best_before = R[k:j, k]
        best_before = best_before[~best_before.isnan()]
        now = R[j, k]
        if best_before.numel() and not now.isnan():
            drops.append(float(best_before.max() - now))
    return sum(drops) / len(drops) if drops else math.nan


class IIRCResults:
    """Everything the IIRC protocol reports, for one stream, as float64 tensors (NaN: not
    evaluated or undefined):

    - ``R[name]``: [T, T], R[j][k] = mean metric over test task k after training task j.
    - ``union_avg[name]``: [T], the paper's curve (``union_average``).
    - ``forgetting[name]``: [T] (``forgetting`` on R[name]).
    - ``hierarchy[name]``: [T], ``hierarchy_rates`` (superclass_recall, ...).

    ``record`` one evaluation (one model) at a time; a later evaluation after the same task
    j overwrites row j. ``as_dict()`` gives plain lists for JSON.
    """

    def __init__(self, num_tasks: int, metric_names: Sequence[str] = METRIC_NAMES):
        self.num_tasks = num_tasks
        self.metric_names = tuple(metric_names)
        def nans(*shape: int) -> Tensor:
            return torch.full(shape, math.nan, dtype=torch.float64)

        T = num_tasks
        self.R = {m: nans(T, T) for m in self.metric_names}
        self.union_avg = {m: nans(T) for m in self.metric_names}
        self.forgetting = {m: nans(T) for m in self.metric_names}
        self.hierarchy = {h: nans(T) for h in HIERARCHY_NAMES}

    def record(self, trained_task: int, sums_by_task: Mapping[int, ExperienceSums]) -> None:
        """Store one evaluation made after training task j. The union average and hierarchy
        rates need test tasks 0..j all in ``sums_by_task``; otherwise they stay NaN."""
        j = trained_task
        for k in [j, *sums_by_task]:
            if not 0 <= k < self.num_tasks:
                raise IndexError(f"task index {k} is outside 0..{self.num_tasks - 1}")
        for k, sums in sums_by_task.items():
            for m in self.metric_names:
                self.R[m][j, k] = sums.mean(m)
        if all(k in sums_by_task for k in range(j + 1)):
            for m, value in union_average(sums_by_task, j).items():
                self.union_avg[m][j] = value
            for h, value in hierarchy_rates(sums_by_task, j).items():
                self.hierarchy[h][j] = value
        for m in self.metric_names:
            self.forgetting[m][j] = forgetting(self.R[m], j)

    def state_dict(self) -> dict:
        """Tensors, strings and numbers only (safe for ``torch.load(weights_only=True)``)."""
        return {"num_tasks": self.num_tasks, "metric_names": list(self.metric_names),
                "R": self.R, "union_avg": self.union_avg, "forgetting": self.forgetting,
                "hierarchy": self.hierarchy}

    @classmethod
    def from_state_dict(cls, state: dict) -> "IIRCResults":
        results = cls(state["num_tasks"], state["metric_names"])
        for table in ("R", "union_avg", "forgetting", "hierarchy"):
            setattr(results, table, {k: v.clone() for k, v in state[table].items()})
        return results

    def as_dict(self) -> dict:
        """{"R": {name: [[...]]}, "union_avg": {...}, "forgetting": {...}, "hierarchy": {...}}
        with float NaN where undefined."""
        def lists(table: dict[str, Tensor]) -> dict:
            return {name: values.tolist() for name, values in table.items()}

        return {
            "R": lists(self.R),
            "union_avg": lists(self.union_avg),
            "forgetting": lists(self.forgetting),
            "hierarchy": lists(self.hierarchy),
        }
