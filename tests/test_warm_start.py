"""warm_start: a run that starts from another run's first-task model (protocols.runner).

Methods compared on the incremental tasks can share one first task: the warm-started run
does not train task 0 again, but task 0 still fills the method's buffers and old models."""
import pytest
import torch
from avalanche.core import SupervisedPlugin

from mile_cl.benchmarks import synthetic_iirc
from protocols.runner import run_iirc

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")


def small_iirc(n_train_per_class=30):
    return synthetic_iirc(n_superclasses=3, subclasses_per_superclass=2, n_orphans=2,
                          n_train_per_class=n_train_per_class, n_test_per_class=6, seed=0)


def run(bench, strategy="er", **kwargs):
    options = dict(epochs=2, first_task_epochs=2, num_tasks=3, batch_size=16, device="cpu",
                   progress=False, seed=5)
    options.update(kwargs)
    return run_iirc(bench, strategy, **options)


class AtTaskStart(SupervisedPlugin):
    """Records, as each task's training starts and ends, what the warm start must provide."""

    def __init__(self):
        super().__init__()
        self.weights, self.buffer_sizes, self.epochs = {}, {}, {}

    def before_training_exp(self, strategy, **kwargs):
        task = strategy.experience.current_experience
        self.epochs[task] = strategy.train_epochs
        self.buffer_sizes[task] = len(strategy.buffer) if hasattr(strategy, "buffer") else None

    def after_training_exp(self, strategy, **kwargs):
        task = strategy.experience.current_experience
        self.weights[task] = {k: v.clone() for k, v in strategy.model.state_dict().items()}


@pytest.fixture(scope="module")
def first_task(tmp_path_factory):
    """A first-task model: an ER run stopped after task 0, and its recorded weights."""
    folder = tmp_path_factory.mktemp("first_task")
    recorder = AtTaskStart()
    results = run(small_iirc(), num_tasks=1, out_dir=folder, plugins=[recorder])
    return folder, results, recorder.weights[0]


def test_starts_from_the_first_task_model_and_does_not_train_task_0(first_task):
    folder, source, source_weights = first_task
    recorder = AtTaskStart()
    results = run(small_iirc(), warm_start=str(folder), old_model_labels="hard",
                  plugins=[recorder])
    assert recorder.epochs == {0: 0, 1: 2, 2: 2}
    for name, value in source_weights.items():
        assert torch.equal(recorder.weights[0][name], value), name
    # task 0 is evaluated again on the same model: the source's numbers, not new ones
    assert results["union_avg"]["pw_jaccard"][0] == source["union_avg"]["pw_jaccard"][0]
    assert results["R"]["pw_jaccard"][0][0] == source["R"]["pw_jaccard"][0][0]
    # ...and the later tasks were trained
    assert not torch.equal(recorder.weights[1]["head.weight"], source_weights["head.weight"])


def test_task_0_still_fills_buffers_and_old_models(first_task):
    folder, _, source_weights = first_task
    recorder = AtTaskStart()
    labels = []

    class OldModelProbe(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            for plugin in strategy.plugins:
                if type(plugin).__name__ == "OldModelLabelsPlugin" and plugin.old_model:
                    labels.append(plugin.old_model.state_dict()["head.weight"].clone())

    run(small_iirc(), warm_start=str(folder), num_tasks=2, old_model_labels="hard",
        plugins=[recorder, OldModelProbe()])
    assert recorder.buffer_sizes[0] == 0 and recorder.buffer_sizes[1] > 0
    # the old model that labels task 1's old classes is the first-task model itself
    assert len(labels) == 1 and torch.equal(labels[0], source_weights["head.weight"])


def test_results_name_the_first_task_they_started_from(first_task, tmp_path):
    folder, source, _ = first_task
    results = run(small_iirc(), warm_start=str(folder), num_tasks=2, out_dir=tmp_path / "run")
    assert results["config"]["warm_start"] == str(folder)
    recorded = results["warm_start"]
    assert recorded["folder"] == str(folder)
    assert recorded["config"]["data_fingerprint"] == source["config"]["data_fingerprint"]
    assert recorded["task_seconds"] == source["timings"]["task_seconds"]
    assert [h["task"] for h in recorded["selection_history"]] == [0, 0]   # its two epochs
    # a second call resumes the same run from its folder rather than training again
    again = run(small_iirc(), warm_start=str(folder), num_tasks=2, out_dir=tmp_path / "run",
                resume=True)
    assert again["union_avg"] == results["union_avg"]


def test_refuses_a_folder_without_a_first_task_model(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint.pt there; train the first task"):
        run(small_iirc(), warm_start=str(tmp_path))


def test_refuses_a_model_from_after_a_later_task(tmp_path):
    run(small_iirc(), num_tasks=2, out_dir=tmp_path / "two_tasks")
    with pytest.raises(ValueError, match="after task 2, not after the first task"):
        run(small_iirc(), warm_start=str(tmp_path / "two_tasks"))


def test_refuses_other_data_or_another_head(first_task):
    folder = str(first_task[0])
    with pytest.raises(ValueError, match="data_fingerprint"):
        run(small_iirc(n_train_per_class=20), warm_start=folder)      # other data
    with pytest.raises(ValueError, match="head: there 'linear', here 'cosine'"):
        run(small_iirc(), "lucir", warm_start=folder)


def test_joint_has_no_first_task_to_start_from(first_task):
    with pytest.raises(ValueError, match="leave warm_start unset for joint"):
        run(small_iirc(), "joint", warm_start=str(first_task[0]))


def test_the_printed_cost_counts_no_first_task_epochs():
    from protocols.cli import run_sample_steps
    from protocols.config import RunConfig
    bench = small_iirc()
    sizes = [len(experience.dataset) for experience in bench.train_stream]
    config = RunConfig(epochs=2, first_task_epochs=5, num_tasks=3)
    assert run_sample_steps(bench, config) == 5 * sizes[0] + 2 * (sizes[1] + sizes[2])
    warm = RunConfig(epochs=2, first_task_epochs=5, num_tasks=3, warm_start="runs/first")
    assert run_sample_steps(bench, warm) == 2 * (sizes[1] + sizes[2])
