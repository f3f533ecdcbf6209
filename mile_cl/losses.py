"""BCE-with-logits over the classes seen so far.

Models in this project keep one fixed-width head (all labels of the benchmark, e.g. 115 for
IIRC-CIFAR) so that tensor shapes never change across tasks. Outputs and targets of classes not
seen yet must not take part in the loss: the IIRC reference slices them away, we multiply by a
mask, which gives the same value with static shapes.
"""
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from torch import nn


class SeenClassesBCE(nn.BCEWithLogitsLoss):
    """``BCEWithLogitsLoss`` restricted to the first ``num_seen`` output units.

    The value equals the IIRC reference's ``BCEWithLogitsLoss(reduction="mean")`` applied to
    ``logits[:, :num_seen]`` and ``targets[:, :num_seen]``: the mean over batch and seen classes.
    Global class ids are in order of first appearance, so the seen classes are always a prefix.
    It subclasses ``BCEWithLogitsLoss`` so code that checks for a BCE criterion (MILePlugin)
    accepts it. Call ``set_num_seen`` at the start of each experience (``SeenClassesPlugin``
    in the strategies does it).
    """

    def __init__(self, num_classes: int, num_seen: int | None = None):
        super().__init__(reduction="mean")
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.register_buffer("seen_mask", torch.zeros(num_classes))
        self._num_seen = num_classes
        self.set_num_seen(num_classes if num_seen is None else num_seen)

    @property
    def num_seen(self) -> int:
        return self._num_seen     # a Python int: reading it never waits for the device

    def set_num_seen(self, num_seen: int) -> None:
        if not 0 < num_seen <= self.num_classes:
            raise ValueError(
                f"num_seen must be in 1..{self.num_classes} (the head width), got {num_seen}"
            )
        self._num_seen = num_seen
        self.seen_mask.zero_()
        self.seen_mask[:num_seen] = 1.0

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the "
                "same shape [batch, num_classes]: targets are multi-hot vectors over all labels"
            )
        if self.seen_mask.device != logits.device:
            # Once, not every step: the mask moves with the criterion and stays there
            # (``SeenClassesPlugin`` moves it at each experience).
            self.to(logits.device)
        mask = self.seen_mask
        # fp32 loss even under autocast: BCE in bf16 loses the small terms.
        per_element = F.binary_cross_entropy_with_logits(
            logits.float(), targets.float(), reduction="none"
        )
        return (per_element * mask).sum() / (mask.sum() * logits.shape[0])


class SeenClassesPlugin(SupervisedPlugin):
    """Keeps a ``SeenClassesBCE`` criterion's seen-class count in step with the stream.

    At each training experience the seen classes are those of this and all earlier
    experiences (``experience.classes_seen_so_far``, a prefix of the global ids).
    """

    def before_training_exp(self, strategy, **kwargs):
        criterion = strategy._criterion
        if not isinstance(criterion, SeenClassesBCE):
            raise TypeError("SeenClassesPlugin needs the strategy's criterion to be a "
                            f"SeenClassesBCE, got {type(criterion).__name__}")
        criterion.set_num_seen(max(strategy.experience.classes_seen_so_far) + 1)
        criterion.to(strategy.device)     # the mask on the logits' device before the first step
