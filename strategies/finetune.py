"""finetune: train on each task's stream as it comes, no memory (IIRC's lower bound).

The training step, the one every baseline here starts from: the model's logits over all C
labels, BCE-with-logits against ``strategy.mb_y`` over the classes seen so far
(``SeenClassesBCE``, kept in step by ``SeenClassesPlugin``). ``mb_y`` is read when the loss is
computed, after the plugins' ``after_forward``: a plugin that rewrites ``strategy.mbatch[1]``
(MILePlugin's pseudo-labels) changes what the model is trained on, for this strategy and for
every subclass of it.

Prediction (the metrics' business, not the strategy's) is by the network: logit > 0.

The optimiser is the caller's: Avalanche keeps its state (momentum) across experiences. The
reference builds a new optimiser for every task; the protocol does the same (its
``protocols.selection.PlateauSelection`` clears the SGD state and resets the learning rate at
each task), as does ``strategy.train(exp, reset_optimizer_state=True)`` outside it.
"""
from avalanche.training.templates import SupervisedTemplate

from mile_cl.losses import SeenClassesBCE, SeenClassesPlugin
from mile_cl.recipe import BATCH_SIZE


class Finetune(SupervisedTemplate):
    """Plain BCE training on the stream; the base class of the other baselines.

    ``benchmark`` is a mile_cl IIRC benchmark (its label count sizes the criterion). Keywords
    other than those below go to Avalanche's ``SupervisedTemplate`` (``train_epochs``,
    ``device``, ``eval_every``...). ``evaluator`` defaults to None (no Avalanche metrics: its
    accuracy metrics take an argmax, wrong for multi-label; pass ``mile_cl`` metrics instead).
    ``restore_best_model`` tells a protocol whether the reference restores the best
    intask-valid epoch at the end of each task for this method.
    """

    restore_best_model = True   # the reference restores the best intask-valid epoch at task end

    def __init__(self, *, model, optimizer, benchmark, plugins=(), criterion=None,
                 train_mb_size=BATCH_SIZE, eval_mb_size=BATCH_SIZE, evaluator=None, **kwargs):
        if criterion is None:
            criterion = SeenClassesBCE(benchmark.num_classes)
        if not isinstance(criterion, SeenClassesBCE):
            raise TypeError("the IIRC baselines train with mile_cl.losses.SeenClassesBCE (BCE over "
                            f"the classes seen so far), got {type(criterion).__name__}")
        plugins = list(plugins)
        if not any(isinstance(p, SeenClassesPlugin) for p in plugins):
            plugins.append(SeenClassesPlugin())
        super().__init__(model=model, optimizer=optimizer, criterion=criterion,
                         train_mb_size=train_mb_size, eval_mb_size=eval_mb_size,
                         plugins=plugins, evaluator=evaluator, **kwargs)
        self.benchmark = benchmark

    # ------------------------------------------------------------------ the training step
    def criterion(self):
        return self._criterion(self.mb_output, self.mb_y)

    # ------------------------------------------------------------------ model selection
    def validation_data(self, task):
        """(dataset, number of seen classes) that steer the learning rate and the best-epoch
        choice during ``task``: its intask-valid set, with the labels it shows."""
        return self.benchmark.intask_valid_stream[task].dataset, self.benchmark.num_seen(task)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        """What a resumed run needs besides the model and optimizer (replay: the buffer)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # ------------------------------------------------------------------ class bookkeeping
    # Global ids follow the order of first appearance, so the seen classes are the prefix
    # 0..num_seen-1 and the current task's classes are num_old..num_seen-1.
    @property
    def num_seen(self) -> int:
        return len(self.experience.classes_seen_so_far)

    @property
    def num_old(self) -> int:
        return self.num_seen - len(self.experience.classes_in_this_experience)
