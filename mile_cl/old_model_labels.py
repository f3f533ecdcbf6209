"""The old model labels the old classes at every step: the ablation that separates what the
protocol's MILe default owes to iterated learning from what it owes to the previous model.

In IIRC a task's data shows only the task's labels: a "hamster" image says nothing about
"small_mammals", learned two tasks ago, and plain BCE teaches the model that hamsters are not
small mammals. The model as the previous task left it still says they are. From the second
experience on, this plugin freezes that model (no copies during the experience, no phases, no
generations) and rewrites, on every training minibatch, the targets of the classes seen before
the experience (ids ``0..num_old-1``):

- ``soft=False``: 1[sigmoid(old logits) > threshold], OR'ed with the ground truth: hard-label
  distillation, the component MILe's protocol default applies on its imitation epochs;
- ``soft=True``: max(sigmoid(old logits), ground truth): the soft targets of LwF (Li and
  Hoiem, 2016) and iCaRL (Rebuffi et al., 2017), through the same BCE.

The experience's new classes keep their ground truth. Cost: one forward of the old model per
training step (MILePlugin with ``old_class_teacher="previous"``: two per imitation step, none
per interactive step; MILe proper: one per imitation step).
"""
from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch import Tensor

from mile_cl.models import frozen_copy
from mile_cl.precision import precision_of


def old_model_targets(ground_truth: Tensor, old_logits: Tensor, num_old: int, *, soft: bool,
                      threshold: float = 0.5) -> Tensor:
    """``ground_truth`` [B, C] with columns ``0..num_old-1`` replaced by the old model's labels
    (hard or soft, see the module), the ground truth kept where it is 1."""
    targets = ground_truth.clone()
    old_probabilities = torch.sigmoid(old_logits[:, :num_old].float())
    old_labels = old_probabilities if soft else (old_probabilities > threshold).float()
    targets[:, :num_old] = torch.maximum(old_labels.to(targets.dtype), targets[:, :num_old])
    return targets


class OldModelLabelsPlugin(SupervisedPlugin):
    """Old classes' targets from the previous experience's model, at every training step.

    ``soft``: sigmoid targets instead of 0/1; ``threshold``: the hard labels' (MILe's 0.5).
    Readable state: ``old_model`` (None in the first experience), ``num_old``;
    ``state_dict()``/``load_state_dict()`` carry them across a resumed run.
    """

    def __init__(self, soft: bool = False, threshold: float = 0.5):
        super().__init__()
        if isinstance(threshold, bool) or not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        self.soft, self.threshold = soft, threshold
        self.experience, self.old_model, self.num_old = None, None, 0
        self._loaded_state = None
        self._old_logits = None

    def before_training_exp(self, strategy, **kwargs):
        exp_id = strategy.experience.current_experience
        if exp_id == self.experience:          # resumed, or trained again: the same old model
            if self._loaded_state is not None:
                self.old_model = frozen_copy(strategy.model, self._loaded_state)
                self._loaded_state = None
            return
        self.experience, self._loaded_state = exp_id, None
        self.num_old = len(strategy.experience.previous_classes)
        self.old_model = frozen_copy(strategy.model) if self.num_old > 0 else None

    def before_forward(self, strategy, **kwargs):
        if self.old_model is None:
            return
        with torch.no_grad(), precision_of(strategy).autocast(strategy.device):
            self._old_logits = avalanche_forward(self.old_model, strategy.mb_x,
                                                 strategy.mb_task_id)

    def after_forward(self, strategy, **kwargs):
        if self._old_logits is None:
            return
        ground_truth = strategy.mb_y
        strategy.mbatch[1] = old_model_targets(ground_truth, self._old_logits, self.num_old,
                                               soft=self.soft, threshold=self.threshold)
        self._old_logits = None

    def state_dict(self) -> dict:
        return {"experience": self.experience, "num_old": self.num_old,
                "old_model": (self.old_model.state_dict() if self.old_model is not None
                              else self._loaded_state)}

    def load_state_dict(self, state: dict) -> None:
        self.experience, self.num_old = state["experience"], state["num_old"]
        self.old_model, self._loaded_state = None, state["old_model"]
