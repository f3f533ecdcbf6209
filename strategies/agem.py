"""agem: Averaged GEM (Chaudhry et al., ICLR 2019), as the IIRC reference runs it.

Memory: MEM_PER_CLASS random exemplars per label with the labels they showed when stored
(``ExemplarBuffer``). The buffer is NOT mixed into the stream's minibatches; at every step:

    g     = gradient of the stream loss: BCE over the CURRENT task's classes only (the
            reference's choice: old classes have no positive in the stream);
    g_ref = gradient of the memory loss on MEMORY_BATCH_SIZE random exemplars (augmented):
            BCE over the OLD classes, targets as stored;
    if g . g_ref < 0:  g <- g - (g . g_ref / g_ref . g_ref) g_ref   (``agem_project``)

Order with MILe: the stream loss reads ``strategy.mb_y`` after the plugins' ``after_forward``
(MILe's pseudo-labels when imitating), but over the current task's classes only, so MILe's
pseudo-labels on old classes are not used unless ``new_classes_only=False`` (then the stream
loss covers every seen class). The memory batch never goes through the plugins: it keeps its
stored labels.
"""
import torch
import torch.nn.functional as F

from mile_cl.buffers import ExemplarBuffer
from strategies.finetune import Finetune

MEM_PER_CLASS = 20
MEMORY_BATCH_SIZE = 128     # the reference: its training batch size
NEW_CLASSES_ONLY = True     # stream loss over the current task's classes (the reference)
RESTORE_BEST_MODEL = False


def agem_project(grad, reference):
    """A-GEM's projection: ``grad`` itself if ``grad . reference >= 0``, else ``grad`` minus its
    component along ``reference`` (the result then has dot product 0 with ``reference``)."""
    dot = torch.dot(grad, reference)
    if dot >= 0:
        return grad
    return grad - (dot / torch.dot(reference, reference)) * reference


class AGEM(Finetune):
    restore_best_model = RESTORE_BEST_MODEL

    def __init__(self, *, model, optimizer, mem_per_class=MEM_PER_CLASS,
                 memory_batch_size=MEMORY_BATCH_SIZE, new_classes_only=NEW_CLASSES_ONLY,
                 buffer_seed=0, **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.buffer = ExemplarBuffer(mem_per_class, "random", seed=buffer_seed)
        self.memory_batch_size = memory_batch_size
        self.new_classes_only = new_classes_only
        self._memory = None

    def _before_training_exp(self, **kwargs):
        self._memory = None
        if len(self.buffer):
            self.buffer.set_transforms_from(self.experience.dataset)  # the stream's augmentation
            self._memory = self.buffer.dataset()
        super()._before_training_exp(**kwargs)

    # ------------------------------------------------------------------ the training step
    def criterion(self):
        if not (self.is_training and self.new_classes_only):
            return self._criterion(self.mb_output, self.mb_y)
        new = slice(self.num_old, self.num_seen)
        return F.binary_cross_entropy_with_logits(self.mb_output[:, new].float(),
                                                  self.mb_y[:, new].float())

    def backward(self):
        super().backward()                               # g: the stream loss's gradient
        if self._memory is None:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad = _flat_grad(params)
        x, y = self.buffer.sample(self.memory_batch_size, self._memory)
        x, y = x.to(self.device), y.to(self.device)
        old = slice(0, self.num_old)
        memory_loss = F.binary_cross_entropy_with_logits(self.model(x)[:, old].float(),
                                                         y[:, old].float())
        reference = torch.autograd.grad(memory_loss, params, allow_unused=True)
        reference = torch.cat([torch.zeros_like(p).flatten() if r is None else r.flatten()
                               for p, r in zip(params, reference)])
        _write_grad(params, agem_project(grad, reference))

    # ------------------------------------------------------------------ task end
    def _after_training_exp(self, **kwargs):
        super()._after_training_exp(**kwargs)
        self.buffer.update(self.experience.dataset, self.experience.classes_in_this_experience,
                           model=self.model, device=self.device)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])


def _flat_grad(params):
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in params])


def _write_grad(params, flat):
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n
