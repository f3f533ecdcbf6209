"""joint and incremental_joint: IIRC's upper bounds, trained with complete labels.

- ``joint``: every task's training data at once, every label (the reference's ``joint``: one
  task holding all classes). Its first ``train()`` call trains on everything, whichever
  experience it is given; later calls return at once (the model has seen every task), so a
  protocol loop over the train stream evaluates the one joint model after each task.
- ``incremental_joint``: at task j, the training data of tasks 0..j with their complete labels
  over the classes seen so far, training continued from the previous task's model (the
  reference's ``incremental_joint``: ``load_tasks_up_to(j)`` in complete-information mode).

Training step: finetune's (BCE over the seen classes on ``strategy.mb_y``). The data, each
image once with all of its labels seen so far, is ``benchmark.complete_label_dataset``, and so
is the validation data that steers the learning rate and the best-epoch choice
(``validation_data``): intask-valid images with complete labels, not the incomplete ones that
would reward forgetting a superclass.
"""
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream

from strategies.finetune import Finetune


class IncrementalJoint(Finetune):
    restore_best_model = True

    def train_dataset_adaptation(self, **kwargs):
        task = self.experience.current_experience
        self.adapted_dataset = self.benchmark.complete_label_dataset("train", task).train()

    def validation_data(self, task):
        return (self.benchmark.complete_label_dataset("intask_valid", task),
                self.benchmark.num_seen(task))

    # the training step: Finetune.criterion, on every sample of tasks 0..j


class Joint(Finetune):
    restore_best_model = True

    def __init__(self, *, model, optimizer, **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.trained = False

    def train(self, experiences, eval_streams=None, **kwargs):
        if self.trained:
            return self.evaluator.get_last_metrics()
        self.trained = True
        return super().train(joint_experience(self.benchmark), eval_streams, **kwargs)

    def validation_data(self, task):
        return self.benchmark.complete_label_dataset("intask_valid"), self.benchmark.num_classes

    def state_dict(self) -> dict:
        return {"trained": self.trained}

    def load_state_dict(self, state: dict) -> None:
        self.trained = state["trained"]


# ------------------------------------------------------------------ complete-label data

def joint_experience(benchmark):
    """One experience holding every task's training data and every class."""
    experience = DatasetExperience(dataset=benchmark.complete_label_dataset("train"))
    EagerCLStream("train_joint", [experience])  # gives it an origin stream and id 0
    every_class = set(range(benchmark.num_classes))
    experience.classes_in_this_experience = every_class
    experience.classes_seen_so_far = every_class
    experience.previous_classes = set()
    experience.future_classes = set()
    return experience
