"""icarl_cnn and icarl_norm: iCaRL with BCE distillation, predicting with the network.

As the IIRC reference (its ``icarl_cnn`` / ``icarl_norm``, not nearest-mean-of-exemplars):

- memory: ``mem_per_class`` (20) exemplars per label chosen by herding on the model's L2-normalised
  features of un-augmented images, each kept with the label it showed (``ExemplarBuffer``);
  replayed as in ``er`` (buffer appended to the task's data, shuffled together);
- loss: one BCE over the seen classes whose targets are, for the previous tasks' classes,
  the previous model's sigmoid outputs on the same (augmented) minibatch (distillation), and
  for the current task's classes the minibatch's targets;
- ``icarl_norm``: the same with a cosine-normalised classifier (``resnet32(head="cosine")``).
  The reference rebuilds that layer at each new task, carrying the weights over but with a
  fresh scale sigma = 1 (LUCIR carries sigma over); ``reset_sigma=True`` does the same.

Order with MILe: distillation is applied AFTER the plugins' ``after_forward``, to whatever
``strategy.mb_y`` holds then. So with MILePlugin the current task's classes get MILe's
pseudo-labels during imitation (the ground truth during interaction), and the old classes
always get the previous model's soft outputs: MILe's pseudo-labels on old classes are
overwritten, since iCaRL's own teacher for them is the previous model. The previous model's
forward runs in ``forward``, beside the model's, in the run's precision
(``mile_cl.precision.precision_of``: bf16 autocast on CUDA with the device data path).
"""
import torch

from mile_cl.models import CosineLinear, frozen_copy
from mile_cl.precision import precision_of
from strategies.er import ER


class ICaRL(ER):
    selection = "herding"
    restore_best_model = False  # the reference keeps the last epoch for iCaRL

    def __init__(self, *, model, optimizer, **kwargs):
        if not callable(getattr(model, "features", None)):
            raise TypeError("iCaRL's herding needs model.features(x) -> [B, D] "
                            "(mile_cl.models.resnet32 has it)")
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.old_model = None
        self.mb_old_output = None

    def _before_training_exp(self, **kwargs):
        # The teacher of the old classes: the model as the previous task left it.
        self.old_model = frozen_copy(self.model) if self.num_old > 0 else None
        super()._before_training_exp(**kwargs)

    # ------------------------------------------------------------------ the training step
    def forward(self):
        self.mb_old_output = self._old_forward(self.mb_x)
        return super().forward()

    def _old_forward(self, x):
        """The previous model's logits on the minibatch (None when there is none)."""
        if not self.is_training or self.old_model is None:
            return None
        with torch.no_grad(), precision_of(self).autocast(self.device):
            return self.old_model(x)

    def criterion(self):
        targets = self.mb_y  # after after_forward: MILe's pseudo-labels when it is imitating
        if self.is_training and self.old_model is not None:
            old_probs = torch.sigmoid(self.mb_old_output.float()).to(targets.dtype)
            targets = torch.cat([old_probs[:, :self.num_old], targets[:, self.num_old:]], dim=1)
        return self._criterion(self.mb_output, targets)


class ICaRLNorm(ICaRL):
    def __init__(self, *, model, optimizer, reset_sigma=True, **kwargs):
        if not isinstance(getattr(model, "head", None), CosineLinear):
            raise TypeError("icarl_norm needs a cosine-normalised classifier: build the model "
                            "with mile_cl.models.resnet32(num_classes, head='cosine')")
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.reset_sigma = reset_sigma

    def _before_training_exp(self, **kwargs):
        super()._before_training_exp(**kwargs)   # the old model keeps its learned sigma
        if self.reset_sigma and self.num_old > 0:
            with torch.no_grad():
                self.model.head.sigma.fill_(1.0)

