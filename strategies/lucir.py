"""lucir: LUCIR (Hou et al., CVPR 2019) with BCE classification, as the IIRC reference runs it.

- classifier: cosine-normalised (``resnet32(head="cosine")``: sigma * cos(feature, weight)).
  At the start of each task after the first, the new classes' weights are imprinted (the
  normalised mean of the normalised features of their un-augmented samples, scaled to the
  old weights' mean norm) and the old classes' weights are frozen (restored after every
  optimiser step, so neither momentum nor weight decay moves them);
- memory: MEM_PER_CLASS exemplars per label by herding (as iCaRL), replayed as in ``er``;
- loss = BCE over the seen classes on ``strategy.mb_y``
       + LAMBDA_BASE * sqrt(old / new classes) * mean(1 - cos(features, old model's features))
       + margin ranking on the exemplars: each of an exemplar's old-class positives must score
         (as a cosine) MARGIN above each of its TOP_K highest new-class scores.

Order with MILe: every target is read from ``strategy.mb_y`` after the plugins'
``after_forward``, i.e. after MILe's pseudo-labelling: the BCE uses the pseudo-labels, and
the margin term ranks the exemplar's old-class pseudo-labels (during interaction: its stored
label) above the new classes. The feature distillation uses no labels. Which samples are
exemplars is read from the labels as loaded, before any plugin: an exemplar shows no label of
the current task, every stream sample shows one.

The head's scale sigma is learned and unconstrained, as in the reference. Under BCE a
negative sigma is a (degenerate) way to say "no" to an old class whose weights are frozen:
IIRC's stream shows a superclass's images as its subclasses only. With a single old class
(a tiny synthetic stream) we have seen sigma turn negative and the model invert every class.
With many old classes a flip also turns their negatives positive, so it should be far less
attractive (not checked at IIRC-CIFAR scale).
"""
import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mile_cl.models import CosineLinear
from strategies.icarl import ICaRL

MEM_PER_CLASS = 20
SELECTION = "herding"
LAMBDA_BASE = 5.0           # less-forget weight, scaled by sqrt(old classes / new classes)
MARGIN = 0.5                # margin ranking loss margin (both of the reference's margins)
TOP_K = 2                   # hard negatives per exemplar positive
RESTORE_BEST_MODEL = False


class LUCIR(ICaRL):
    restore_best_model = RESTORE_BEST_MODEL
    selection = SELECTION

    def __init__(self, *, model, optimizer, lambda_base=LAMBDA_BASE, margin=MARGIN, top_k=TOP_K,
                 **kwargs):
        if not isinstance(getattr(model, "head", None), CosineLinear):
            raise TypeError("lucir needs a cosine-normalised classifier: build the model with "
                            "mile_cl.models.resnet32(num_classes, head='cosine')")
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.lambda_base, self.margin, self.top_k = lambda_base, margin, top_k
        self.lambda_cur = lambda_base
        self._frozen_old_weights = None

    def _before_training_exp(self, **kwargs):
        super()._before_training_exp(**kwargs)   # ICaRL's: copies the old model
        self._frozen_old_weights = None
        if self.num_old > 0:
            n_new = self.num_seen - self.num_old
            self.lambda_cur = self.lambda_base * math.sqrt(self.num_old / n_new)
            self._imprint_new_weights()
            self._frozen_old_weights = self.model.head.weight[:self.num_old].detach().clone()

    # ------------------------------------------------------------------ the training step
    def _unpack_minibatch(self):
        super()._unpack_minibatch()
        self.mb_y_loaded = self.mbatch[1]  # before any plugin may replace it

    def forward(self):
        self.mb_features = self.model.features(self.mb_x)
        return self.model.head(self.mb_features)

    def criterion(self):
        classification = self._criterion(self.mb_output, self.mb_y)
        if not self.is_training or self.old_model is None:
            return classification
        with torch.no_grad():
            old_features = self.old_model.features(self.mb_x)
        less_forget = (1 - F.cosine_similarity(self.mb_features, old_features, dim=1)).mean()
        return classification + self.lambda_cur * less_forget + self._margin_ranking()

    def _margin_ranking(self):
        old, seen = self.num_old, self.num_seen
        exemplar = ~(self.mb_y_loaded[:, old:seen] > 0.5).any(dim=1)
        cosines = self.mb_output[exemplar, :seen] / self.model.head.sigma.detach()
        positives = self.mb_y[exemplar, :old] > 0.5
        return margin_ranking(cosines, positives, self.top_k, self.margin)

    def optimizer_step(self):
        super().optimizer_step()
        if self._frozen_old_weights is not None:
            with torch.no_grad():
                self.model.head.weight[:self.num_old] = self._frozen_old_weights

    # ------------------------------------------------------------------ task start
    @torch.no_grad()
    def _imprint_new_weights(self):
        head, old = self.model.head, self.num_old
        mean_old_norm = head.weight[:old].norm(dim=1).mean()
        data = self.experience.dataset.eval()
        was_training = self.model.training
        self.model.eval()
        features, labels = [], []
        for x, y, *_ in DataLoader(data, batch_size=self.eval_mb_size, shuffle=False):
            features.append(F.normalize(self.model.features(x.to(self.device)), dim=1))
            labels.append(y.to(self.device) > 0.5)
        self.model.train(was_training)
        features, labels = torch.cat(features), torch.cat(labels)
        for c in range(old, self.num_seen):
            members = labels[:, c]
            if members.any():
                direction = F.normalize(features[members].mean(dim=0), dim=0)
                head.weight[c] = direction * mean_old_norm


def margin_ranking(cosines, old_positives, top_k=TOP_K, margin=MARGIN):
    """LUCIR's margin ranking loss on exemplars, for multi-hot labels.

    ``cosines``: [E, num_seen] class cosines of E exemplars; ``old_positives``: bool
    [E, num_old], their old-class labels. Every (exemplar, positive class) pair is ranked
    against the exemplar's ``top_k`` highest new-class cosines: mean over all pairs of
    max(0, margin - (cos_positive - cos_negative)). 0 when there is no positive.
    """
    num_old = old_positives.shape[1]
    rows, cols = torch.nonzero(old_positives, as_tuple=True)
    if len(rows) == 0 or cosines.shape[1] == num_old:
        return cosines.new_zeros(())
    k = min(top_k, cosines.shape[1] - num_old)
    hard_negatives = cosines[:, num_old:].topk(k, dim=1).values[rows]     # [P, k]
    positive = cosines[rows, cols].unsqueeze(1).expand_as(hard_negatives)  # [P, k]
    return F.margin_ranking_loss(positive, hard_negatives, torch.ones_like(positive),
                                 margin=margin)
