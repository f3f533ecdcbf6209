"""IIRC's per-task learning-rate schedule and model selection, as one Avalanche plugin.

Each task starts from fresh SGD state at the configured learning rate. After every training
epoch the model is scored on the current task's intask_valid set
(incomplete labels, IIRC prediction rule over the seen classes, mean pw-JS). The score drives
``ReduceLROnPlateau`` (max mode, factor 0.1, patience 10, absolute threshold 1e-3), which is
rebuilt at each task, and, where the method asks for it, the best epoch's weights are put back
when the task ends (the reference does this for finetune, ER and joint).
"""
from __future__ import annotations

import copy
import warnings

import torch
from avalanche.core import SupervisedPlugin
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from mile_cl.metrics import mask_targets, predict, pw_jaccard


@torch.inference_mode()
def validation_pw_jaccard(model, dataset, num_seen: int, device, batch_size: int = 1000) -> float:
    """Mean pw-JS of ``model`` on ``dataset`` (eval transforms), over the first ``num_seen``
    classes. NaN for an empty dataset."""
    if len(dataset) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y, *_ in DataLoader(dataset.eval(), batch_size=batch_size, shuffle=False):
        logits = model(x.to(device))
        total += pw_jaccard(predict(logits, num_seen).cpu(), mask_targets(y, num_seen)).sum().item()
    model.train(was_training)
    return total / len(dataset)


class PlateauSelection(SupervisedPlugin):
    """ReduceLROnPlateau on intask_valid pw-JS, reset per task; optional best-epoch restore.

    ``valid_stream`` is the benchmark's ``intask_valid_stream``; experience j of the training
    stream is scored on its experience j, unless the strategy has a ``validation_data(task)``
    method returning (dataset, number of seen classes), as the joint baselines do. ``history``
    keeps (task, epoch, lr, pw-JS) rows.
    """

    def __init__(self, valid_stream, num_seen_after, *, restore_best: bool, patience: int = 10,
                 factor: float = 0.1, threshold: float = 1e-3, eval_batch_size: int = 1000):
        super().__init__()
        self.valid_stream = valid_stream
        self.num_seen_after = list(num_seen_after)
        self.restore_best = restore_best
        self.scheduler_args = dict(mode="max", factor=factor, patience=patience,
                                   threshold=threshold, threshold_mode="abs")
        self.eval_batch_size = eval_batch_size
        self.history: list[dict] = []
        self.scheduler = None
        self.best_score, self.best_state = None, None
        self._warned_empty = False

    def before_training_exp(self, strategy, **kwargs):
        # A new task starts from fresh SGD state (no momentum) at the configured learning
        # rate: the reference builds a new optimizer for every task.
        strategy.optimizer.state.clear()
        for group in strategy.optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"])
        self.scheduler = ReduceLROnPlateau(strategy.optimizer, **self.scheduler_args)
        self.best_score, self.best_state = None, None

    def after_training_epoch(self, strategy, **kwargs):
        task = strategy.experience.current_experience
        dataset, num_seen = self._validation_data(strategy, task)
        _check_finite(strategy, task)
        score = validation_pw_jaccard(strategy.model, dataset, num_seen, strategy.device,
                                      self.eval_batch_size)
        self.history.append(dict(task=task, epoch=len([h for h in self.history
                                                        if h["task"] == task]),
                                 lr=strategy.optimizer.param_groups[0]["lr"], pw_jaccard=score))
        if score != score:          # NaN: no validation data for this task, nothing to steer
            if not self._warned_empty:
                warnings.warn(f"task {task} has no intask-valid samples: no learning-rate "
                              "schedule or best-epoch restore for it", stacklevel=2)
                self._warned_empty = True
            return
        self.scheduler.step(score)
        # ">=": on ties the later epoch wins, as in the reference.
        if self.restore_best and (self.best_score is None or score >= self.best_score):
            self.best_score = score
            self.best_state = copy.deepcopy(strategy.model.state_dict())

    def _validation_data(self, strategy, task):
        # A strategy may say what to validate on (the joint baselines: complete labels).
        if hasattr(strategy, "validation_data"):
            return strategy.validation_data(task)
        return self.valid_stream[task].dataset, self.num_seen_after[task]

    def after_training_exp(self, strategy, **kwargs):
        if self.restore_best and self.best_state is not None:
            strategy.model.load_state_dict(self.best_state)
        self.best_state = None      # weights are not kept across tasks


def _check_finite(strategy, task) -> None:
    """Fail loudly on divergence: NaN weights predict no label and score a silent pw-JS of 0.
    Checked once per epoch, not per step, to keep the training step free of host syncs."""
    finite = torch.stack([torch.isfinite(p).all() for p in strategy.model.parameters()]).all()
    if not bool(finite):
        raise FloatingPointError(
            f"training diverged in task {task}: the model has non-finite weights; lower the "
            f"learning rate (now {strategy.optimizer.param_groups[0]['lr']})")
