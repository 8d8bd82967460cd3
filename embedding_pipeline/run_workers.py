"""Which process runs a run, so that one killed (kill -9, out of memory, a reboot) is marked failed instead of showing
as running for ever: the run tags itself with its worker as it starts; the `dead_runs_sensor` (under the daemon) and
`embedding-pipeline embed` (before its run) mark failed the started runs whose worker on this machine is gone.
Dagster's run monitoring does the same for a Kubernetes run launcher; its default launcher reports no health."""

import os
import socket

import dagster as dg
import psutil

WORKER_TAG = "embedding_pipeline/worker"  # a run's worker process, as a tag on the run


def worker_id(pid: int | None = None) -> str:
    """This machine, the process and when it started (so a reused pid is not taken for the same process)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time()}"


def _alive(worker: str) -> bool:
    host, pid, started = worker.split(":", 2)
    if host != socket.gethostname():
        return True  # another machine's run: its own run monitoring answers for it
    try:
        return str(psutil.Process(int(pid)).create_time()) == started
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def claim_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag this run with its worker process, so that a later run can tell if it was killed."""
    instance.add_run_tags(run_id, {WORKER_TAG: worker_id()})


def fail_dead_runs(instance: dg.DagsterInstance, log) -> list[str]:
    """Mark failed the runs still STARTED whose worker process on this machine is gone (kill -9, OOM, reboot).

    Such a run holds nothing (the embedded store's lock died with it), but it would show as running
    for ever; the next run finishes its work (it resumes after the last batch the dead one wrote).
    """
    dead = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        worker = run.tags.get(WORKER_TAG)
        if worker and not _alive(worker):
            message = (
                f"Its process ({worker}) is gone (killed, out of memory or a reboot); the next run resumes its work"
            )
            instance.report_run_failed(run, message)
            log(f"Run {run.run_id[:8]} ({run.tags.get('dagster/partition', '')}) marked failed: {message}")
            dead.append(run.run_id)
    return dead
