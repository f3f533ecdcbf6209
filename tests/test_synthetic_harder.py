"""The synthetic stand-in's harder knobs: what each changes; the defaults change nothing."""
import numpy as np

from mile_cl.benchmarks import synthetic_iirc

SMALL = dict(n_superclasses=3, subclasses_per_superclass=2, n_orphans=1, classes_per_task=2,
             image_size=8, n_train_per_class=10, n_test_per_class=2, seed=3)


def images(bench):
    return bench._joint["images"].numpy()


def test_explicit_defaults_give_the_same_images():
    plain = synthetic_iirc(**SMALL)
    explicit = synthetic_iirc(**SMALL, superclass_share=1.0, superclass_jitter=0.0,
                              n_distractors=0, distractor_strength=0.0, task_order_seed=3)
    assert np.array_equal(images(plain), images(explicit))
    assert plain.tasks == explicit.tasks


def test_task_order_seed_reorders_tasks_and_keeps_images():
    a = synthetic_iirc(**SMALL, task_order_seed=1)
    b = synthetic_iirc(**SMALL, task_order_seed=2)
    assert np.array_equal(images(a), images(b))
    named = [[a.class_names[i] for i in t] for t in a.tasks]
    other = [[b.class_names[i] for i in t] for t in b.tasks]
    assert named != other


def test_distractors_change_the_images():
    plain = synthetic_iirc(**SMALL)
    noisy = synthetic_iirc(**SMALL, n_distractors=3, distractor_strength=1.0)
    assert not np.array_equal(images(plain), images(noisy))
