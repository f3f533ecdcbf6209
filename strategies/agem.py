"""agem: Averaged GEM (Chaudhry et al., ICLR 2019), as the IIRC reference runs it.

Memory (``WithMemory``): ``mem_per_class`` random exemplars per label with the labels they
showed when stored. The buffer is NOT mixed into the stream's minibatches; at every step:

    g     = gradient of the stream loss: BCE over the CURRENT task's classes only (the
            reference's choice: old classes have no positive in the stream);
    g_ref = gradient of the memory loss on ``memory_batch_size`` random exemplars (augmented):
            BCE over the OLD classes, targets as stored;
    if g . g_ref < 0:  g <- g - (g . g_ref / g_ref . g_ref) g_ref   (``agem_project``)

The memory batch is drawn, gathered and augmented on the model's device (the exemplars are
uploaded once per task, ``mile_cl.device_data.DeviceDataset``), with the strategy's own
generator there, and the projection is chosen by ``torch.where``: the step never waits for
the host. It runs in the run's precision (``mile_cl.precision.precision_of``: autocast and
memory format), as the stream's forward does.

Order with MILe: the stream loss reads ``strategy.mb_y`` after the plugins' ``after_forward``
(MILe's pseudo-labels when imitating), but over the current task's classes only, so MILe's
pseudo-labels on old classes are not used unless ``new_classes_only=False`` (then the stream
loss covers every seen class). The memory batch never goes through the plugins: it keeps its
stored labels.
"""
import torch
import torch.nn.functional as F

from mile_cl.device_data import DeviceDataset
from mile_cl.precision import precision_of
from mile_cl.recipe import BATCH_SIZE
from strategies.memory import WithMemory


def agem_project(grad, reference):
    """A-GEM's projection: ``grad`` itself if ``grad . reference >= 0``, else ``grad`` minus its
    component along ``reference`` (the result then has dot product 0 with ``reference``)."""
    dot = torch.dot(grad, reference)
    projected = grad - (dot / torch.dot(reference, reference)) * reference
    return torch.where(dot < 0, projected, grad)   # no host branch on the device's number


class AGEM(WithMemory):
    restore_best_model = False

    def __init__(self, *, model, optimizer, memory_batch_size=BATCH_SIZE,
                 new_classes_only=True, buffer_seed=0, **kwargs):
        super().__init__(model=model, optimizer=optimizer, buffer_seed=buffer_seed, **kwargs)
        self.memory_batch_size = memory_batch_size
        self.new_classes_only = new_classes_only   # the reference's stream loss
        self._memory = None                          # the exemplars, on the device
        self._memory_seed = buffer_seed
        self._generator = None
        self._generator_state = None                 # from a checkpoint, until first use

    def _before_training_exp(self, **kwargs):
        super()._before_training_exp(**kwargs)
        self._memory = None
        if len(self.buffer):
            self._memory = DeviceDataset.from_avalanche(self.buffer.dataset(), self.device)

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
        x, y = self._memory_batch()
        with precision_of(self).autocast(self.device):
            logits = self.model(x)
        old = slice(0, self.num_old)
        memory_loss = F.binary_cross_entropy_with_logits(logits[:, old].float(),
                                                         y[:, old].float())
        reference = torch.autograd.grad(memory_loss, params, allow_unused=True)
        reference = torch.cat([torch.zeros_like(p).flatten() if r is None else r.flatten()
                               for p, r in zip(params, reference, strict=True)])
        _write_grad(params, agem_project(grad, reference))

    def _memory_batch(self):
        """``min(memory_batch_size, len)`` distinct random exemplars, augmented, on the device,
        in the precision policy's memory format."""
        generator = self._memory_generator()
        n = len(self._memory)
        picked = torch.randperm(n, generator=generator, device=generator.device)
        x, y, _ = self._memory.batch(picked[:self.memory_batch_size], generator,
                                     channels_last=precision_of(self).channels_last)
        return x, y

    def _memory_generator(self) -> torch.Generator:
        device = self._memory.images.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self._memory_seed)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
                self._generator_state = None
        return self._generator

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        generator = (self._generator.get_state() if self._generator is not None
                     else self._generator_state)
        return {**super().state_dict(), "memory_generator": generator}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._generator, self._generator_state = None, state.get("memory_generator")


def _flat_grad(params):
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in params])


def _write_grad(params, flat):
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n
