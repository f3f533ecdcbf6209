"""The IIRC baselines as Avalanche strategies, correct with multi-hot BCE targets.

    strategy = strategies.build("er", model, optimizer, benchmark=benchmark,
                                plugins=[MILePlugin(...)], train_epochs=140)
    for experience in benchmark.train_stream:
        strategy.train(experience)

``build`` returns an Avalanche ``SupervisedTemplate`` with the criterion
``mile_cl.losses.SeenClassesBCE(benchmark.num_classes)`` and ``SeenClassesPlugin`` already in
place. ``overrides`` are the method's knobs (``mem_per_class``, ``lambda_base``...: each
class's keywords, the shared recipe values in ``mile_cl.recipe``) and Avalanche's keywords
(``train_epochs``, ``device``, ``train_mb_size``, ``evaluator``...). An ``evaluator``
holding one of Avalanche's single-label metrics (accuracy, class accuracy, confusion
matrix...) gets a ``mile_cl.avalanche_metrics.SingleLabelMetricWarning``. Each method is
one file here: finetune.py is the base training step, memory.py the exemplar memory the
rehearsal methods share, er.py replays it, icarl.py, lucir.py, agem.py, joint.py the rest.

The model: one head over all labels; iCaRL and LUCIR need ``model.features(x)`` (herding),
icarl_norm and lucir a cosine head (``mile_cl.models.resnet32(C, head="cosine")``).
"""
import functools
import inspect

from mile_cl.avalanche_metrics import warn_single_label_metrics
from strategies.agem import AGEM
from strategies.er import ER
from strategies.er_infinite import ERInfinite
from strategies.finetune import Finetune
from strategies.icarl import ICaRL, ICaRLNorm
from strategies.joint import IncrementalJoint, Joint
from strategies.lucir import LUCIR

STRATEGIES = {
    "finetune": Finetune,
    "er": ER,
    "er_infinite": ERInfinite,
    "icarl_cnn": ICaRL,
    "icarl_norm": ICaRLNorm,
    "lucir": LUCIR,
    "agem": AGEM,
    "joint": Joint,
    "incremental_joint": IncrementalJoint,
}
NAMES = tuple(STRATEGIES)


def build(name, model, optimizer, *, benchmark, plugins=(), **overrides):
    """The IIRC baseline ``name`` (one of ``NAMES``) as an Avalanche ``SupervisedTemplate``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(NAMES)}")
    strategy = STRATEGIES[name](model=model, optimizer=optimizer, benchmark=benchmark,
                                plugins=plugins, **overrides)
    warn_single_label_metrics(strategy.evaluator)    # argmax metrics on multi-hot targets
    return strategy


@functools.cache
def keywords(name) -> tuple[str, ...]:
    """The keywords ``build(name, ...)`` takes: the named parameters of the strategy's
    constructors up its class hierarchy (ours, then Avalanche's templates), as long as each
    passes the others on (``**kwargs``), less those the class sets itself
    (``fixed_keywords``)."""
    cls = STRATEGIES[name]
    names: dict[str, None] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]  # self
        names.update((p.name, None) for p in parameters
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(n for n in names if n not in getattr(cls, "fixed_keywords", ()))


__all__ = ["build", "keywords", "NAMES", "STRATEGIES", "Finetune", "ER", "ERInfinite", "ICaRL",
           "ICaRLNorm", "LUCIR", "AGEM", "Joint", "IncrementalJoint"]
