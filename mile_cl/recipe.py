"""IIRC-CIFAR's training recipe, as the IIRC reference runs its baselines: one flat list,
read by the strategies and by the protocol.

Sources: the IIRC paper (Abdelsalam et al., CVPR 2021) and its reference code
(chandar-lab/IIRC, ``experiments/main.py``): ResNet-32, SGD with momentum, batch 128,
ReduceLROnPlateau on intask-valid pw-JS, 20 exemplars per class, 140 epochs per task (the
first task twice as long), joint training 200 epochs as one first task (so 400).
"""

EPOCHS = 140                # per task; the first task trains twice as long
BATCH_SIZE = 128            # training minibatch (also A-GEM's memory batch)
EVAL_BATCH_SIZE = 1000
LR, MOMENTUM, WEIGHT_DECAY = 1.0, 0.9, 1e-5
MEM_PER_CLASS = 20          # exemplars kept per label by every bounded-memory method
JOINT_EPOCHS = 200          # joint's epochs with EPOCHS per task: one first task, so doubled


def first_task_epochs_of(strategy: str, epochs: int = EPOCHS) -> int:
    """Task 0's epochs when the user sets none: twice ``epochs``; for joint, whose one task
    holds everything, twice the reference's joint epochs scaled by ``epochs / EPOCHS``
    (400 at the recipe's 140)."""
    if strategy == "joint":
        return 2 * max(1, round(epochs * JOINT_EPOCHS / EPOCHS))
    return 2 * epochs
