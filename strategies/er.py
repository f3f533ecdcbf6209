"""er: experience replay with 20 random exemplars per class (IIRC's "ER").

Memory: after each task, MEM_PER_CLASS samples of each of its labels, chosen at random, are
stored with the label they showed then (incomplete, never relabelled; ``ExemplarBuffer``).

Replay batch composition, as the reference (``TaskDataMergedWithBuffer`` with
``buffer_sampling_multiplier`` 1): the buffer is appended to the task's training set and the
union is shuffled into minibatches of BATCH_SIZE. There is no fixed number of replayed
samples per minibatch: every exemplar is replayed once per epoch, and a minibatch holds on
average BATCH_SIZE * |buffer| / (|task| + |buffer|) of them (IIRC-CIFAR: about 12 of 128 in
task 1, about 70 of 128 by the last tasks). Exemplars get the stream's train augmentation.

The training step is finetune's: one BCE over the seen classes on stream and exemplars
alike, read from ``strategy.mb_y``, so MILe's pseudo-labels (when on) cover the exemplars too.
"""
from mile_cl.buffers import ExemplarBuffer
from strategies.finetune import Finetune

MEM_PER_CLASS = 20          # exemplars per label
SELECTION = "random"
RESTORE_BEST_MODEL = True   # the reference's finetune_20 restores the best epoch


class ER(Finetune):
    restore_best_model = RESTORE_BEST_MODEL
    selection = SELECTION

    def __init__(self, *, model, optimizer, mem_per_class=MEM_PER_CLASS, buffer_seed=0,
                 **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.buffer = ExemplarBuffer(mem_per_class, self.selection, seed=buffer_seed)

    def train_dataset_adaptation(self, **kwargs):
        super().train_dataset_adaptation(**kwargs)
        if len(self.buffer):
            self.buffer.set_transforms_from(self.experience.dataset)  # the stream's augmentation
            self.adapted_dataset = self.adapted_dataset.concat(self.buffer.dataset())

    # the training step: Finetune.criterion, over stream + exemplars

    def _after_training_exp(self, **kwargs):
        # Plugins first (a protocol may restore the best epoch there), then store exemplars
        # with the model the task ends with.
        super()._after_training_exp(**kwargs)
        self.buffer.update(self.experience.dataset, self.experience.classes_in_this_experience,
                           model=self.model, device=self.device)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
