"""MILe (multi-label iterated learning, Rajeswar et al., CVPR 2022) as an Avalanche plugin.

Inside every experience the plugin alternates two phases on the one trainable model:

    interactive: `interactive_steps` optimiser steps on the minibatch's ground-truth targets;
    imitation:   the teacher is a frozen copy of the model taken at the switch, and the model
                 (same weights, same optimiser state) trains for `imitation_steps` steps on
                 pseudo_labels(teacher(x)), computed on the very minibatch the model sees.

interactive + imitation = one generation. A new experience restarts the schedule with an
interactive phase, so the teacher has seen the new classes before it labels anything.
The schedule lives in `after_training_iteration`; the teacher labels the batch in `before_forward`
and `after_forward` swaps the targets before the criterion reads them.
"""
import math

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch import nn

from mile_cl.losses import SeenClassesBCE
from mile_cl.models import frozen_copy as _frozen_copy

INTERACTIVE, IMITATION = "interactive", "imitation"
LOSS_REDUCTIONS = ("mean", "sum")
OLD_CLASS_TEACHERS = ("current", "previous")


def pseudo_labels(teacher_logits, num_seen, threshold=0.5, ground_truth=None):
    """MILe's hard targets: 1[sigmoid(teacher_logits) > threshold] over the seen classes.

    `teacher_logits` is [B, C] over all labels; classes `num_seen..C-1` (not seen yet) get 0.
    `ground_truth` (multi-hot [B, C]), when given, is OR'ed in. Returns a float {0, 1} tensor.
    """
    labels = torch.sigmoid(teacher_logits.float()) > threshold
    if ground_truth is not None:
        labels |= ground_truth != 0
    labels[:, num_seen:] = False
    return labels.float()


def split_pseudo_labels(teacher_logits, old_teacher_logits, num_old, num_seen, threshold=0.5,
                        ground_truth=None):
    """Pseudo-labels with two teachers: classes ``0..num_old-1`` (seen before this experience)
    from ``old_teacher_logits``, the experience's new classes from ``teacher_logits``.

    The old teacher is the model as the previous experience left it: it still predicts the
    superclass of a new subclass, which the current teacher has already been trained away
    from. ``ground_truth`` is OR'ed into both parts, as in ``pseudo_labels``.
    """
    labels = pseudo_labels(teacher_logits, num_seen, threshold, ground_truth)
    old = pseudo_labels(old_teacher_logits, num_old, threshold, ground_truth)
    labels[:, :num_old] = old[:, :num_old]
    return labels


def mile_variant_name(settings: dict | None) -> str:
    """A short label for a dict of ``MILePlugin`` keywords, e.g.
    ``gt,prev-teacher,mean,no-prior,e1/e1`` (``prior`` is read from a ``prior_bias`` key,
    which the protocol keeps beside the plugin's keywords). None means MILe is off: ``off``.
    """
    if settings is None:
        return "off"
    parts = ["gt" if settings.get("keep_ground_truth") else "no-gt"]
    if settings.get("old_class_teacher", "current") == "previous":
        parts.append("prev-teacher")
    if settings.get("start_with_imitation"):
        parts.append("open-imitation")
    parts.append(settings.get("loss_reduction", "mean"))
    parts.append("prior" if settings.get("prior_bias") else "no-prior")
    if settings.get("threshold", 0.5) != 0.5:
        parts.append(f"t{settings['threshold']:g}")
    parts.append("/".join(_length_name(settings, phase) for phase in (INTERACTIVE, IMITATION)))
    return ",".join(parts)


def _length_name(settings, phase):
    if settings.get(f"{phase}_steps") is not None:
        return f"s{settings[f'{phase}_steps']}"
    return f"e{settings.get(f'{phase}_epochs', 1):g}"


def init_output_bias(linear: nn.Linear, num_classes: int | None = None) -> None:
    """Set the head's bias to -log(C), as the MILe authors do (C defaults to the head width).

    Every sigmoid then starts near 1/C, the prior of a label, instead of 1/2: the first
    teacher does not call every class positive.
    """
    num_classes = linear.out_features if num_classes is None else num_classes
    with torch.no_grad():
        linear.bias.fill_(-math.log(num_classes))


class MILePlugin(SupervisedPlugin):
    """Multi-label iterated learning inside each experience of a BCE-with-logits strategy.

    Give each phase's length either in optimiser steps (`interactive_steps`,
    `imitation_steps`) or in epochs of the current experience (`interactive_epochs`,
    `imitation_epochs`: rounded to whole steps with the experience's dataloader length, at
    least 1); IIRC tasks differ a lot in size. Each phase runs exactly that many steps.

    Pseudo-labels cover the classes seen so far (`experience.classes_seen_so_far`, a prefix of
    the global ids); other classes get target 0, and a seen-classes criterion ignores them.
    `keep_ground_truth=True` ORs the minibatch's own labels into the pseudo-labels (the
    authors' code has this option, off by default). With Replay, buffer samples travel in the
    same minibatch and are pseudo-labelled like the rest.

    `start_with_imitation=True` (off by default): from the second experience on, open each
    experience with an imitation phase whose teacher is the model as the previous experience
    left it, with the ground truth OR'ed into its pseudo-labels. The idea: while training a
    subclass ("hamster") the model soon unlearns its superclass ("small_mammals"), so a
    teacher copied after `interactive_steps` of the new task may no longer know it; the
    previous model still does, and the OR keeps the new labels.

    `loss_reduction`: "mean" (default, what the plugin always did and IIRC's loss: the mean
    over batch x seen classes) or "sum" (the MILe authors': summed over classes, averaged over
    the batch; each logit's gradient is then num_seen times larger). "sum" scales the
    strategy's whole loss in `before_backward` by the number of classes the criterion
    averages over (`num_seen` for a seen-classes criterion), in both phases.

    `old_class_teacher`: "current" (default, the paper's schedule: one teacher, copied at each
    switch) or "previous": from the second experience on, the classes seen before the
    experience take their pseudo-labels from a second teacher, the model as the previous
    experience left it, frozen for the whole experience; the experience's new classes take
    theirs from the current teacher (and the ground truth with `keep_ground_truth`). Within a
    task the model sees only subclass labels and soon unlearns the superclass, so every
    teacher copied inside the task inherits that; the previous model has not.

    Readable state: `phase` ("interactive" or "imitation"), `step_in_phase` (steps done in
    it), `generation` (imitation phases completed in the current experience, the opening one
    of `start_with_imitation` included), `teacher` (None while interactive).
    `state_dict()` / `load_state_dict()` save and restore it, teacher weights included. The
    schedule belongs to one experience (`experience`, its id):
    training that same experience again (a resumed run, or one more `strategy.train(exp)`)
    continues the schedule where it stopped; any other experience restarts it.
    """

    def __init__(
        self,
        interactive_steps: int | None = None,
        imitation_steps: int | None = None,
        threshold: float = 0.5,
        keep_ground_truth: bool = False,
        *,
        interactive_epochs: float | None = None,
        imitation_epochs: float | None = None,
        start_with_imitation: bool = False,
        loss_reduction: str = "mean",
        old_class_teacher: str = "current",
    ):
        super().__init__()
        if isinstance(threshold, bool) or not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, "
                             f"got {loss_reduction!r}")
        if old_class_teacher not in OLD_CLASS_TEACHERS:
            raise ValueError(f"old_class_teacher must be one of {OLD_CLASS_TEACHERS}, "
                             f"got {old_class_teacher!r}")
        self._lengths = {
            INTERACTIVE: _phase_length(INTERACTIVE, interactive_steps, interactive_epochs),
            IMITATION: _phase_length(IMITATION, imitation_steps, imitation_epochs),
        }
        self.threshold = threshold
        self.keep_ground_truth = keep_ground_truth
        self.start_with_imitation = start_with_imitation
        self.loss_reduction = loss_reduction
        self.old_class_teacher = old_class_teacher

        # The schedule (what state_dict saves).
        self.experience = None
        self.phase = INTERACTIVE
        self.step_in_phase = 0
        self.generation = 0
        self.teacher = None
        self._loaded_teacher_state = None  # from load_state_dict, until a model is at hand
        # old_class_teacher="previous": the previous experience's model, and its class count.
        self.old_teacher, self.num_old = None, 0
        self._loaded_old_teacher_state = None
        self._teacher_logits = None  # (batch, its version, logits) from before_forward
        self._old_teacher_logits = None

        self.phase_steps = None  # {phase: steps} in the current experience
        self.num_seen = None
        # The last minibatch's targets in imitation (None while interactive), for mile_metrics.
        self.last_pseudo_labels = None
        self.last_ground_truth = None

    # ---------------------------------------------------------------- callbacks
    def before_training_exp(self, strategy, **kwargs):
        _check_criterion(strategy._criterion)
        self.num_seen = _num_seen(strategy.experience)
        exp_id = strategy.experience.current_experience
        if exp_id == self.experience:  # resumed, or trained again: carry on
            if self.phase == IMITATION and self.teacher is None:
                self.teacher = _frozen_copy(strategy.model, self._loaded_teacher_state)
                self._loaded_teacher_state = None
            if self._loaded_old_teacher_state is not None:
                self.old_teacher = _frozen_copy(strategy.model, self._loaded_old_teacher_state)
                self._loaded_old_teacher_state = None
            return
        self.experience, self.generation = exp_id, 0
        self.old_teacher, self.num_old, self._loaded_old_teacher_state = None, 0, None
        if self.old_class_teacher == "previous" and exp_id > 0:
            self.old_teacher = _frozen_copy(strategy.model)
            self.num_old = len(strategy.experience.previous_classes)
        if self.start_with_imitation and exp_id > 0:
            self._start(IMITATION, strategy.model)  # the model as the last experience left it
        else:
            self._start(INTERACTIVE)

    def before_training_epoch(self, strategy, **kwargs):
        # Here, not in before_training_exp: ReplayPlugin swaps in its loader in its own
        # before_training_exp, which runs after ours.
        n_batches = len(strategy.dataloader)
        self.phase_steps = {
            phase: count if unit == "steps" else max(1, round(count * n_batches))
            for phase, (unit, count) in self._lengths.items()
        }

    def before_forward(self, strategy, **kwargs):
        # The teacher runs before the model's forward, while the memory of the model's graph is
        # not held yet: between forward and backward it costs twice as much on a CPU.
        if self.phase == IMITATION:
            self._teacher_logits = self._teach(strategy.mb_x, strategy.mb_task_id)
            self._old_teacher_logits = self._teach_old(strategy.mb_x, strategy.mb_task_id)

    def after_forward(self, strategy, **kwargs):
        _check_widths(strategy.mb_output, strategy.mb_y)
        if self.phase == INTERACTIVE:
            self.last_pseudo_labels = self.last_ground_truth = None
            return
        x, version, teacher_logits = self._teacher_logits
        if strategy.mb_x is not x or x._version != version:
            # a plugin after this one changed the batch in before_forward (augmentation on
            # the device, say): label the batch the model actually saw
            _, _, teacher_logits = self._teach(strategy.mb_x, strategy.mb_task_id)
            self._old_teacher_logits = self._teach_old(strategy.mb_x, strategy.mb_task_id)
        old_teacher_logits = self._old_teacher_logits
        self._teacher_logits = self._old_teacher_logits = None
        ground_truth = strategy.mb_y
        keep = ground_truth if self._keeps_ground_truth() else None
        if old_teacher_logits is None:
            targets = pseudo_labels(teacher_logits, self.num_seen, self.threshold, keep)
        else:
            targets = split_pseudo_labels(teacher_logits, old_teacher_logits, self.num_old,
                                          self.num_seen, self.threshold, keep)
        strategy.mbatch[1] = targets.to(ground_truth.dtype)  # before the criterion reads it
        self.last_pseudo_labels, self.last_ground_truth = strategy.mbatch[1], ground_truth

    def before_backward(self, strategy, **kwargs):
        if self.loss_reduction == "sum":
            strategy.loss = strategy.loss * self._classes_averaged(strategy)

    def after_training_iteration(self, strategy, **kwargs):
        self.step_in_phase += 1
        if self.step_in_phase < self.phase_steps[self.phase]:
            return
        if self.phase == INTERACTIVE:
            self._start(IMITATION, strategy.model)
        else:
            self.generation += 1
            self._start(INTERACTIVE)

    # ---------------------------------------------------------------- helpers
    def _teach(self, x, task_labels):
        with torch.no_grad():
            return x, x._version, avalanche_forward(self.teacher, x, task_labels)

    def _classes_averaged(self, strategy) -> int:
        # A seen-classes criterion averages over the seen classes, a plain one over all
        # outputs. From the plugin's own count: reading the criterion's would sync the device.
        if isinstance(strategy._criterion, SeenClassesBCE):
            return self.num_seen
        return strategy.mb_output.shape[1]

    def _teach_old(self, x, task_labels):
        if self.old_teacher is None:
            return None
        with torch.no_grad():
            return avalanche_forward(self.old_teacher, x, task_labels)

    def _start(self, phase, model=None):
        self.phase, self.step_in_phase = phase, 0
        self.teacher = _frozen_copy(model) if phase == IMITATION else None

    def _keeps_ground_truth(self):
        # The opening imitation phase of start_with_imitation is the only imitation phase
        # that runs before the experience's first completed generation.
        opening = self.start_with_imitation and self.experience > 0 and self.generation == 0
        return self.keep_ground_truth or opening

    # ---------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        teacher = self.teacher.state_dict() if self.teacher is not None else None
        return {
            "experience": self.experience,
            "phase": self.phase,
            "step_in_phase": self.step_in_phase,
            "generation": self.generation,
            "teacher": teacher if teacher is not None else self._loaded_teacher_state,
            "old_teacher": (self.old_teacher.state_dict() if self.old_teacher is not None
                            else self._loaded_old_teacher_state),
            "num_old": self.num_old,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the schedule. The teacher is rebuilt (a copy of the strategy's model with
        the saved weights) at the next before_training_exp of the same experience.

        Resuming also needs the model's and the optimizer's state. Note that a fresh Avalanche
        strategy resets the optimizer state in its first before_training_exp, before the
        plugins run: load the optimizer's state from a plugin's before_training_exp.
        """
        if state["phase"] not in (INTERACTIVE, IMITATION):
            raise ValueError(f"unknown phase {state['phase']!r} in MILePlugin state")
        if state["phase"] == IMITATION and state["teacher"] is None:
            raise ValueError("MILePlugin state is in the imitation phase but has no teacher")
        self.experience = state["experience"]
        self.phase = state["phase"]
        self.step_in_phase = state["step_in_phase"]
        self.generation = state["generation"]
        self.teacher = None
        self._loaded_teacher_state = state["teacher"] if self.phase == IMITATION else None
        # Absent in states saved before old_class_teacher existed.
        self.old_teacher = None
        self._loaded_old_teacher_state = state.get("old_teacher")
        self.num_old = state.get("num_old", 0)


def _phase_length(phase, steps, epochs):
    if (steps is None) == (epochs is None):
        raise ValueError(
            f"give exactly one of {phase}_steps and {phase}_epochs "
            f"(got {phase}_steps={steps}, {phase}_epochs={epochs})"
        )
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"{phase}_steps must be a positive int, got {steps!r}")
        return "steps", steps
    if not epochs > 0:
        raise ValueError(f"{phase}_epochs must be positive, got {epochs!r}")
    return "epochs", epochs


def _check_criterion(criterion):
    if not isinstance(criterion, nn.BCEWithLogitsLoss):
        raise TypeError(
            "MILePlugin needs a BCE-with-logits criterion (one sigmoid per class, multi-hot "
            f"targets), but the strategy's criterion is {type(criterion).__name__}. Build the "
            "strategy with criterion=mile_cl.losses.SeenClassesBCE(num_classes) "
            "(or torch.nn.BCEWithLogitsLoss())."
        )


def _num_seen(experience):
    seen = getattr(experience, "classes_seen_so_far", None)
    if seen is None:
        raise ValueError(
            "MILePlugin needs experience.classes_seen_so_far to know the seen classes: "
            "decorate the streams with avalanche.benchmarks.scenarios.supervised."
            "with_classes_timeline (the mile_cl benchmarks do)"
        )
    if set(seen) != set(range(len(seen))):
        raise ValueError(
            f"MILePlugin expects the seen classes to be the ids 0..n-1 (global ids in order of "
            f"first appearance), got {sorted(seen)}"
        )
    return len(seen)


def _check_widths(output, targets):
    if targets.dim() != 2 or output.shape != targets.shape:
        raise ValueError(
            f"MILePlugin: model output {tuple(output.shape)} and targets "
            f"{tuple(targets.shape)} must both be [batch, num_labels]: targets are multi-hot "
            "over all labels of the benchmark, and the head needs one output per label"
        )
