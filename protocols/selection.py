"""IIRC's per-task learning-rate schedule and model selection, as one Avalanche plugin.

Each task starts from fresh SGD state at the configured learning rate. After every training
epoch the model is scored, and the score drives ``ReduceLROnPlateau`` (factor 0.1, patience 10,
absolute threshold 1e-3), rebuilt at each task; where the method asks for it, the best epoch's
weights are put back when the task ends (the reference does this for finetune, ER and joint).

What scores an epoch (``mode``):

- ``"intask"`` (IIRC's reference): mean pw-JS on the current task's intask_valid set, whose
  labels are incomplete (a hamster image shows only "hamster"), IIRC prediction rule over the
  seen classes. A model that also predicts the true superclass scores lower on it, so this
  selection works against keeping superclasses, MILe's whole point.
- ``"posttask"``: pw-JS on posttask_valid of the tasks seen so far (complete labels of the
  seen classes; each image counted once). These are held-out training images (10% of each
  class's training pool), never test data; the reference evaluates on them after each task.
- ``"last"``: no validation; the schedule reads the epoch's mean training loss (min mode) and
  no epoch is restored: the model is the last epoch's.

Validation forwards run in the run's precision (``mile_cl.precision.precision_of(strategy)``,
the policy the training step uses). When the strategy keeps its data on the device (a
``DeviceDataPlugin``), validation batches come from the device too (in the policy's memory
format), under ``inference_mode``, and the score is accumulated there: one host read per epoch.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import warnings

import torch
from avalanche.core import SupervisedPlugin
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from mile_cl.device_data import DeviceDataPlugin
from mile_cl.metrics import mask_targets, predict, pw_jaccard, union_weights
from mile_cl.precision import precision_of
from protocols.config import SELECTION_MODES


@torch.inference_mode()
def validation_pw_jaccard(model, dataset, num_seen: int, device, batch_size: int = 1000, *,
                          autocast=None) -> float:
    """Mean pw-JS of ``model`` on ``dataset`` (eval transforms), over the first ``num_seen``
    classes. NaN for an empty dataset. ``autocast``: as for ``score_batches``."""
    if len(dataset) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y, *_ in DataLoader(dataset.eval(), batch_size=batch_size, shuffle=False):
        with autocast() if autocast is not None else contextlib.nullcontext():
            logits = model(x.to(device))
        total += pw_jaccard(predict(logits, num_seen).cpu(), mask_targets(y, num_seen)).sum().item()
    model.train(was_training)
    return total / len(dataset)


@torch.inference_mode()
def score_batches(model, batches, num_seen: int, *, union: bool, autocast=None) -> torch.Tensor:
    """Mean pw-JS of ``model`` over ``batches`` of (x, y) on the model's device, as a 0-d
    float64 tensor on that device (no host read; NaN without samples). With ``union``, each
    sample is weighted 1/|labels seen| (``union_weights``): over a concatenation of IIRC
    complete-label experiences every image then counts once. ``autocast``: a context
    manager factory for the forward (the precision policy's ``autocast``)."""
    was_training = model.training
    model.eval()
    total = weight = None
    for x, y in batches:
        with autocast() if autocast is not None else contextlib.nullcontext():
            logits = model(x)
        targets = mask_targets(y, num_seen)
        scores = pw_jaccard(predict(logits.float(), num_seen), targets).double()
        w = union_weights(targets) if union else torch.ones_like(scores)
        batch_total, batch_weight = (scores * w).sum(), w.sum()
        total = batch_total if total is None else total + batch_total
        weight = batch_weight if weight is None else weight + batch_weight
    model.train(was_training)
    if total is None:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return total / weight


class PlateauSelection(SupervisedPlugin):
    """ReduceLROnPlateau on a validation score, reset per task; optional best-epoch restore.

    ``valid_stream`` is the benchmark's ``intask_valid_stream``; with ``mode="intask"``
    experience j of the training stream is scored on its experience j, unless the strategy
    has a ``validation_data(task)`` method returning (dataset, number of seen classes), as the
    joint baselines do. ``mode="posttask"`` scores on ``posttask_stream[:j+1]`` (the
    benchmark's ``posttask_valid_stream``); ``mode="last"`` on nothing (see the module
    docstring). ``history`` keeps (task, epoch, lr, pw-JS or train_loss) rows.
    """

    def __init__(self, valid_stream, num_seen_after, *, restore_best: bool, patience: int = 10,
                 factor: float = 0.1, threshold: float = 1e-3, eval_batch_size: int = 1000,
                 mode: str = "intask", posttask_stream=None):
        super().__init__()
        if mode not in SELECTION_MODES:
            raise ValueError(f"mode must be one of {SELECTION_MODES}, got {mode!r}")
        if mode == "posttask" and posttask_stream is None:
            raise ValueError("mode='posttask' needs posttask_stream (the benchmark's "
                             "posttask_valid_stream)")
        self.mode = mode
        self.posttask_stream = posttask_stream
        self.valid_stream = valid_stream
        self.num_seen_after = list(num_seen_after)
        self.restore_best = restore_best
        # "last" follows the training loss down; the others a validation score up.
        self.scheduler_args = dict(mode="min" if mode == "last" else "max", factor=factor,
                                   patience=patience,
                                   threshold=threshold, threshold_mode="abs")
        self.eval_batch_size = eval_batch_size
        self.history: list[dict] = []
        self.scheduler = None
        self.best_score, self.best_state = None, None
        self._warned_empty = False
        self._device_batches = None     # this task's validation batches, when on the device
        self._loss_sum, self._loss_steps = None, 0

    def before_training_exp(self, strategy, **kwargs):
        # A new task starts from fresh SGD state (no momentum) at the configured learning
        # rate: the reference builds a new optimizer for every task.
        strategy.optimizer.state.clear()
        for group in strategy.optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"])
        self.scheduler = ReduceLROnPlateau(strategy.optimizer, **self.scheduler_args)
        self.best_score, self.best_state = None, None
        self._device_batches = None

    def before_training_epoch(self, strategy, **kwargs):
        self._loss_sum, self._loss_steps = None, 0

    def after_training_iteration(self, strategy, **kwargs):
        if self.mode == "last":       # summed on the device, read once per epoch
            loss = strategy.loss.detach().sum()     # Avalanche's loss is [1]-shaped
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._loss_steps += 1

    def after_training_epoch(self, strategy, **kwargs):
        task = strategy.experience.current_experience
        epoch = len([h for h in self.history if h["task"] == task])
        lr = strategy.optimizer.param_groups[0]["lr"]
        finite = _all_finite(strategy.model)
        value = self._mean_loss() if self.mode == "last" else self._score(strategy, task)
        value, finite = _read_once(value, finite)
        if not finite:
            raise FloatingPointError(
                f"training diverged in task {task}: the model has non-finite weights; lower "
                f"the learning rate (now {lr})")
        if self.mode == "last":
            self.history.append(dict(task=task, epoch=epoch, lr=lr, train_loss=value))
            if value == value:
                self.scheduler.step(value)
            return
        score = value
        self.history.append(dict(task=task, epoch=epoch, lr=lr, pw_jaccard=score))
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

    def _mean_loss(self):
        if not self._loss_steps:
            return float("nan")
        return self._loss_sum.double() / self._loss_steps

    def _score(self, strategy, task):
        """The epoch's validation score: a float from the host path, a 0-d device tensor
        from the device path (read later, with the finiteness check)."""
        policy = precision_of(strategy)
        autocast = functools.partial(policy.autocast, strategy.device)
        device_data = _device_data_plugin(strategy)
        if device_data is None:
            return self._host_score(strategy, task, autocast)
        if self._device_batches is None:
            dataset, num_seen = self._validation_data(strategy, task)
            if len(dataset) == 0:
                return float("nan")
            loader = device_data.loader(dataset, strategy.device, self.eval_batch_size,
                                        train=False, channels_last=policy.channels_last)
            self._device_batches = ([(x, y) for x, y, _ in loader], num_seen)
        batches, num_seen = self._device_batches
        return score_batches(strategy.model, batches, num_seen,
                             union=self.mode == "posttask", autocast=autocast)

    def _host_score(self, strategy, task, autocast) -> float:
        dataset, num_seen = self._validation_data(strategy, task)
        if self.mode == "intask":     # the reference's arithmetic, bit for bit
            return validation_pw_jaccard(strategy.model, dataset, num_seen, strategy.device,
                                         self.eval_batch_size, autocast=autocast)
        if len(dataset) == 0:
            return float("nan")
        batches = ((x.to(strategy.device), y.to(strategy.device)) for x, y, *_ in
                   DataLoader(dataset.eval(), batch_size=self.eval_batch_size, shuffle=False))
        return float(score_batches(strategy.model, batches, num_seen, union=True,
                                   autocast=autocast))

    def _validation_data(self, strategy, task):
        if self.mode == "posttask":
            # Complete labels of the classes seen so far: tasks 0..task, each image weighted
            # so it counts once (score_batches(union=True)).
            datasets = [self.posttask_stream[k].dataset for k in range(task + 1)]
            return _concat(datasets), self.num_seen_after[task]
        # A strategy may say what to validate on (the joint baselines: complete labels).
        if hasattr(strategy, "validation_data"):
            return strategy.validation_data(task)
        return self.valid_stream[task].dataset, self.num_seen_after[task]

    def after_training_exp(self, strategy, **kwargs):
        if self.restore_best and self.best_state is not None:
            strategy.model.load_state_dict(self.best_state)
        self.best_state = None      # weights are not kept across tasks


def _concat(datasets):
    merged = datasets[0]
    for dataset in datasets[1:]:
        merged = merged.concat(dataset)
    return merged


def _device_data_plugin(strategy):
    """The strategy's DeviceDataPlugin when it evaluates on the device, else None: where the
    validation batches come from (a data question; the precision is ``precision_of``'s)."""
    for plugin in getattr(strategy, "plugins", ()):
        if isinstance(plugin, DeviceDataPlugin) and plugin.eval_on_device:
            return plugin
    return None


def _all_finite(model) -> torch.Tensor:
    """A 0-d bool tensor on the model's device: are all weights finite? NaN weights predict no
    label and score a silent pw-JS of 0, so divergence must fail loudly. Checked once per
    epoch, not per step, to keep the training step free of host syncs."""
    return torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()


def _read_once(value, finite) -> tuple[float, bool]:
    """(score, finite) on the host, with one device-to-host read when both are tensors."""
    if not isinstance(value, torch.Tensor):
        return value, bool(finite)
    score, ok = torch.stack([value.double(), finite.double()]).tolist()
    return score, ok == 1.0
