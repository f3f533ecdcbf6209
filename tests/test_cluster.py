"""Sweeps on a Ray cluster the driver joins (--ray-address): a local two-node cluster
(ray.cluster_utils.Cluster: a head and a worker node on 127.0.0.1, each declaring one GPU that
this CPU machine does not have, as a CPU-only head in front of GPU nodes would), with Ray's
token authentication on, as docs/sweeps.md starts one."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from protocols import cli, iirc_cifar

pytestmark = pytest.mark.filterwarnings("ignore")       # Ray's start-up chatter
REPO = Path(__file__).resolve().parents[1]
COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")
# docs/sweeps.md's cluster command, shrunk to two fast dev runs on the synthetic stand-in
SMALL = ["--synthetic", "--fast-dev-run", "--strategy", "finetune,er", "--configurations", "0",
         "--mile", "off", "--quiet"]
PAPER = ["--config", "protocols/sweeps/paper.yaml"]
CLUSTER_FLAGS = ["--workers", "64", "--gpus-per-run", "0.5"]


def auth_mode(mode: str | None, patch: pytest.MonkeyPatch) -> None:
    """RAY_AUTH_MODE for this process and the nodes it starts. Ray reads it into a cached
    config, which ray.init refreshes the same way when it turns token auth on."""
    from ray._raylet import Config
    if mode is None:
        patch.delenv("RAY_AUTH_MODE", raising=False)
    else:
        patch.setenv("RAY_AUTH_MODE", mode)
    Config.initialize("")


@pytest.fixture(scope="module")
def two_nodes():
    patch = pytest.MonkeyPatch()
    auth_mode("token", patch)
    # the docs' `ray get-auth-token --generate`: a token in ~/.ray/auth_token unless one is there
    subprocess.run([sys.executable, "-c", "from ray.scripts.scripts import main; main()",
                    "get-auth-token", "--generate"], check=True, capture_output=True)
    if ray.is_initialized():                  # another module's local cluster
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()
    patch.undo()
    from ray._raylet import Config
    Config.initialize("")


def results(out) -> dict:
    return {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.rglob(
        "results.json"))}


def test_the_docs_cluster_command_runs_on_two_nodes_as_it_runs_in_process(two_nodes, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.chdir(REPO)                   # the command names protocols/sweeps/paper.yaml
    # Real (tiny) runs, not fast dev ones, and any CPU estimate counted as too long: a driver
    # that timed the sweep on its own CPU would refuse it (exit 2); the cluster's is unknown.
    monkeypatch.setattr(cli, "CPU_CONFIRM_SECONDS", 0)
    small = [*SMALL[2:], "--synthetic", "--synthetic-per-class", "8,2", "--epochs", "1",
             "--first-task-epochs", "1", "--num-tasks", "2"]
    assert iirc_cifar.main([*PAPER, *small, "--device", "cpu", "--out",
                            str(tmp_path / "here")]) == 0
    assert not ray.is_initialized()
    status = iirc_cifar.main([*PAPER, *CLUSTER_FLAGS, *small, "--ray-address",
                              two_nodes.address, "--out", str(tmp_path / "cluster")])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "2 nodes, 2 CPUs, 2 GPUs" in err and "time not estimated" in err  # not ours
    assert not ray.is_initialized()                                       # the driver left
    here, there = results(tmp_path / "here"), results(tmp_path / "cluster")
    assert len(here) == 2 and here.keys() == there.keys()
    for run in here:
        for key in COMPARED:
            assert here[run][key] == there[run][key], (run, key)


def test_runs_asking_for_more_gpus_than_the_cluster_has_are_refused_at_once(two_nodes,
                                                                           tmp_path, capsys):
    status = iirc_cifar.main([*SMALL, "--gpus-per-run", "2", "--ray-address",
                              two_nodes.address, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2
    assert "asks for 2 GPU(s)" in err and "largest node has 1 GPU(s)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_wrong_address_is_one_line_within_seconds(tmp_path, capsys):
    with socket.socket() as s:                # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    status = iirc_cifar.main([*SMALL, "--ray-address", f"127.0.0.1:{port}",
                              "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and time.perf_counter() - started < 60
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in err and "ray start --head" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_a_cluster_with_token_auth_refuses_a_driver_without_it_in_one_line(two_nodes,
                                                                          tmp_path, capsys):
    patch = pytest.MonkeyPatch()
    auth_mode("disabled", patch)
    started = time.perf_counter()
    try:
        status = iirc_cifar.main([*SMALL, "--ray-address", two_nodes.address,
                                  "--out", str(tmp_path / "runs")])
    finally:
        auth_mode("token", patch)
    err = capsys.readouterr().err
    assert status == 2 and time.perf_counter() - started < 120
    assert "RAY_AUTH_MODE=token" in err and "Traceback" not in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()
