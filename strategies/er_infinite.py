"""er_infinite: experience replay keeping every training sample (IIRC's "ER-infinite").

As ``er`` (buffer appended to each task's data, one BCE over the seen classes), but the
buffer keeps every sample of every task, each with the incomplete label it showed in its task.
Unlike incremental joint training, old samples are never relabelled with later labels.

The reference's ``infinite_buffer`` is a 100,000-sample memory shared out per class
(ceil(100000 / seen classes) each), which late in IIRC-CIFAR trims the two largest superclass
pools (vehicles: 1,280 samples, large_omnivores_and_herbivores: 960) to 870; we keep them whole.
"""
from strategies.er import ER


class ERInfinite(ER):
    restore_best_model = True
    fixed_keywords = ("mem_per_class",)      # it keeps every sample

    def __init__(self, *, model, optimizer, **kwargs):
        if "mem_per_class" in kwargs:
            raise ValueError("er_infinite keeps every sample; for a bounded memory use 'er' "
                             "with mem_per_class=N")
        super().__init__(model=model, optimizer=optimizer, mem_per_class=None, **kwargs)
