"""er: experience replay with 20 random exemplars per class (IIRC's "ER").

Memory (``WithMemory``): after each task, ``mem_per_class`` samples of each of its labels,
chosen at random, are stored with the label they showed then (incomplete, never relabelled).

Replay batch composition, as the reference (``TaskDataMergedWithBuffer`` with
``buffer_sampling_multiplier`` 1): the buffer is appended to the task's training set and the
union is shuffled into minibatches. There is no fixed number of replayed samples per
minibatch: every exemplar is replayed once per epoch, and a minibatch of 128 holds on average
128 * |buffer| / (|task| + |buffer|) of them (IIRC-CIFAR: about 12 in task 1, about 70 by the
last tasks). Exemplars get the stream's train augmentation.

The training step is finetune's: one BCE over the seen classes on stream and exemplars
alike, read from ``strategy.mb_y``, so MILe's pseudo-labels (when on) cover the exemplars too.
"""
from strategies.memory import WithMemory


class ER(WithMemory):
    selection = "random"
    restore_best_model = True   # the reference's finetune_20 restores the best epoch

    def train_dataset_adaptation(self, **kwargs):
        super().train_dataset_adaptation(**kwargs)
        if len(self.buffer):
            self.adapted_dataset = self.adapted_dataset.concat(self.buffer.dataset())

    # the training step: Finetune.criterion, over stream + exemplars
