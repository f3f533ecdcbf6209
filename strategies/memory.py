"""The exemplar memory every rehearsal baseline shares (ER, ER-infinite, A-GEM, iCaRL, LUCIR).

``WithMemory`` is finetune plus an ``ExemplarBuffer`` (``mile_cl.buffers``): ``mem_per_class``
exemplars of each label (None: every sample), chosen by the class's ``selection`` rule
("random" or "herding"), stored at the end of each task with the model the task ends with
and the label they showed then, saved and restored with the strategy. What a method does with
the memory (ER: mix it into the stream; A-GEM: a reference gradient) is its own file's step.
"""
from mile_cl.buffers import ExemplarBuffer
from mile_cl.recipe import MEM_PER_CLASS
from strategies.finetune import Finetune


class WithMemory(Finetune):
    selection = "random"      # the exemplar rule; herding for iCaRL and LUCIR

    def __init__(self, *, model, optimizer, mem_per_class=MEM_PER_CLASS, buffer_seed=0,
                 **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.buffer = ExemplarBuffer(mem_per_class, self.selection, seed=buffer_seed)

    def _before_training_exp(self, **kwargs):
        if len(self.buffer):      # exemplars replay with the stream's own augmentation
            self.buffer.set_transforms_from(self.experience.dataset)
        super()._before_training_exp(**kwargs)

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
