"""Running a sweep's runs: one after another in this process, or as Ray tasks.

    outcomes = run_sequential(jobs, resume=False)
    outcomes = run_on_ray(jobs, workers=4, gpus_per_run=0.25)      # needs `pip install ray`

A ``Job`` is one run: its ``RunConfig``, its folder and its label. Runs never talk to each
other: each owns its folder (checkpoint after every task, results.json at the end), and the
driver only reads the folders. A run that raises writes ``error.txt`` (its traceback) into its
folder and the others go on; a Ray worker or node that dies is retried (``max_retries``) and
the retry resumes from the run's last finished task. Ray is imported only by ``run_on_ray``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from protocols.checkpoint import save_text, write_problem
from protocols.config import RunConfig, load_benchmark
from protocols.run_folder import ERROR_FILE

CONNECT_TIMEOUT_S = 10.0           # to reach a cluster's head node before giving up


@dataclass(frozen=True)
class Job:
    config: RunConfig
    out_dir: Path
    label: str
    plugins: tuple = field(default=(), compare=False)    # more Avalanche plugins (tests' hooks)

    @property
    def name(self) -> str:
        return f"{self.label} config{self.config.configuration}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    error: str | None = None          # the exception's last line; None when the run finished

    @property
    def ok(self) -> bool:
        return self.error is None


def run_job(job: Job, *, resume: bool, on_task_end=None) -> Outcome:
    """Run one job in this process. Any exception (divergence, out of memory, bad data)
    becomes error.txt in the run folder and a failed Outcome; Ctrl-C is passed on."""
    try:
        from protocols.runner import run_iirc
        benchmark = load_benchmark(job.config)
        run_iirc(benchmark, job.config, out_dir=job.out_dir, resume=resume, progress=False,
                 plugins=job.plugins, on_task_end=on_task_end)
    except Exception as error:        # noqa: BLE001 - a failed run must not stop the sweep
        write_error(job.out_dir, traceback.format_exc())
        return Outcome(job, f"{type(error).__name__}: {error}".splitlines()[0])
    (Path(job.out_dir) / ERROR_FILE).unlink(missing_ok=True)    # an earlier try's error
    return Outcome(job)


def write_error(out_dir, text: str) -> None:
    """error.txt in the run folder, whole or not at all. Failing to record a failure (a full
    disk) is one line on stderr, never an exception: it must not stop the other runs."""
    path = Path(out_dir) / ERROR_FILE
    try:
        save_text(text, path)
    except OSError as error:
        print(f"error: could not record a failed run: {write_problem(error)}", file=sys.stderr)


class SweepProgress:
    """The driver's view: one line per finished task of any run (label, task j/N, union
    pw-JS, elapsed) and a bar of runs done with an ETA."""

    def __init__(self, total: int, show: bool):
        from tqdm.auto import tqdm
        self.started = time.perf_counter()
        self.show = show
        self.bar = tqdm(total=total, unit="run", desc="sweep", disable=not show,
                        file=sys.stderr)

    def task_line(self, job: Job, summary: str) -> None:
        if self.show:
            elapsed = time.perf_counter() - self.started
            self.bar.write(f"{job.name} | {summary} | sweep {elapsed / 60:.1f} min")

    def run_done(self, outcome: Outcome) -> None:
        if not outcome.ok:
            self.bar.write(f"FAILED {outcome.job.name}: {outcome.error} (see "
                           f"{Path(outcome.job.out_dir) / ERROR_FILE})", file=sys.stderr)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_sequential(jobs: list[Job], *, resume: bool, show: bool = True) -> list[Outcome]:
    """Every job in this process, in order."""
    progress = SweepProgress(len(jobs), show)
    outcomes = []
    try:
        for job in jobs:
            outcome = run_job(job, resume=resume,
                              on_task_end=lambda summary, job=job: progress.task_line(job, summary))
            progress.run_done(outcome)
            outcomes.append(outcome)
    finally:
        progress.close()
    return outcomes


# --- Ray ---------------------------------------------------------------------------------------

def ray_missing_message() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return ('--workers and --ray-address run the sweep on Ray, which is not installed: '
                'pip install -e ".[ray]" (or pip install "ray>=2.9")')
    return None


def _ray_job(job: Job) -> Outcome:
    # Always resume inside Ray: the driver has checked the folders before the sweep, so a
    # checkpoint found here is this run's own, left by an attempt whose worker died.
    return run_job(job, resume=True)


def run_on_ray(jobs: list[Job], *, workers: int, gpus_per_run: float = 0.0,
               cpus_per_run: float = 1.0, address: str | None = None, max_retries: int = 2,
               show: bool = True, poll_seconds: float = 1.0) -> list[Outcome]:
    """Every job as a Ray task, at most ``workers`` at once, on an embedded local cluster
    (``address`` None: started here with ``workers * cpus_per_run`` CPUs, shut down at the
    end) or on the cluster at ``address`` (its nodes must see the run folders)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, workers, cpus_per_run, gpus_per_run, address)
    stop_on_sigterm()                   # ray.init installs its own handler, which aborts
    remote = ray.remote(_ray_job).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                          max_retries=max_retries, retry_exceptions=False)
    progress = SweepProgress(len(jobs), show)
    waiting, running, outcomes = list(range(len(jobs))), {}, {}
    printed = [0] * len(jobs)             # task lines printed per job
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index = waiting.pop(0)
                running[remote.remote(jobs[index])] = index
            done, _ = ray.wait(list(running), num_returns=1, timeout=poll_seconds)
            for index in running.values():
                printed[index] = _print_new_tasks(jobs[index], printed[index], progress)
            for ref in done:
                index = running.pop(ref)
                outcomes[index] = _outcome(ray, ref, jobs[index])
                printed[index] = _print_new_tasks(jobs[index], printed[index], progress)
                progress.run_done(outcomes[index])
    except BaseException:               # Ctrl-C, SIGTERM: stop the runs, on a cluster too
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        progress.close()
        if started_here:
            ray.shutdown()
    return [outcomes[index] for index in range(len(jobs))]


def _outcome(ray, ref, job: Job) -> Outcome:
    from ray.exceptions import RayError
    try:
        return ray.get(ref)
    except RayError as error:      # the worker died more than max_retries times
        message = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        write_error(job.out_dir, f"{error}\n{message}\n")
        return Outcome(job, message)


def _init_ray(ray, workers, cpus_per_run, gpus_per_run, address) -> None:
    if address is not None:
        connect(address)
        return
    import torch
    gpus = torch.cuda.device_count() if gpus_per_run > 0 else 0
    # address="local": a cluster of our own, even when another one runs on this machine (with
    # no address, ray.init joins the last one started here and refuses num_cpus).
    ray.init(address="local", num_cpus=max(1, round(workers * cpus_per_run)), num_gpus=gpus,
             include_dashboard=False, runtime_env=_runtime_env(), log_to_driver=False)


def _runtime_env() -> dict:
    # Workers import this very source tree (a checkout need not be installed).
    source = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


class ClusterUnreachable(RuntimeError):
    """The Ray cluster at --ray-address cannot be joined; the message is one line."""


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> list[dict]:
    """Join the Ray cluster at ``address`` and return its live nodes' resources ({"CPU": n,
    "GPU": m, ...} each); ``ClusterUnreachable`` when nothing answers there within
    ``timeout_s`` or the cluster refuses us. ray.init alone retries a wrong address for
    minutes."""
    import ray
    where = _host_port(address)
    if where is not None:
        try:
            socket.create_connection(where, timeout=timeout_s).close()
        except OSError as error:
            raise ClusterUnreachable(
                f"no Ray cluster answers at {address} ({error.strerror or error}); start one "
                "with `ray start --head --port 6379` or check the address") from None
    try:
        ray.init(address=address, runtime_env=_runtime_env(), log_to_driver=False)
    except Exception as error:      # noqa: BLE001 - Ray raises many kinds; all end the same
        # Something answers there: a refused token is the usual reason (Ray names it only
        # in its log lines), else another Ray version.
        raise ClusterUnreachable(
            f"cannot join the Ray cluster at {address} ({type(error).__name__}: "
            f"{_first_line(error)}); if it uses token authentication, set RAY_AUTH_MODE=token "
            "and give this machine the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN); "
            "else check that it runs this Ray version") from None
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto" and other forms,
    which ray.init resolves itself."""
    host, _, port = address.split("://")[-1].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


class Terminated(KeyboardInterrupt):
    """SIGTERM (what a scheduler sends), handled as Ctrl-C: every finished task is kept."""


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises ``Terminated`` in the main thread (elsewhere: unchanged)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


TERMINATED = threading.Event()       # set once SIGTERM arrived: the sweep exits 143


def _raise_terminated(signum, frame):
    TERMINATED.set()
    raise Terminated("terminated (SIGTERM)")


def _print_new_tasks(job: Job, printed: int, progress: SweepProgress) -> int:
    """Task lines of a run on another process, read from the files it writes after each task;
    returns how many lines of that run are printed now."""
    for name in ("results.json", "results.partial.json"):
        try:
            summaries = json.loads((Path(job.out_dir) / name).read_text()).get("summaries", [])
        except (OSError, ValueError):
            continue
        for summary in summaries[printed:]:
            progress.task_line(job, summary)
        return max(printed, len(summaries))
    return printed
