"""A backfill from the shell with the daemon running: eight partitions, one embedded Qdrant, no lock errors."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from embedding_pipeline.partitions import PARTITIONS, RESOURCE_TYPES
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER
from embedding_pipeline_tests.support.helpers import (
    REPO,
    dagster_daemon,
    encoder_env,
    hold_store,
    pipeline_env,
    resource,
)

BIN = Path(sys.executable).parent


def _wait_for_runs(instance: dg.DagsterInstance, at_least: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if len(runs) >= at_least and all(r.is_finished for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"runs not finished in {timeout}s: {[(r.tags, r.status) for r in instance.get_runs()]}")


def test_job_backfill_all_partitions_with_the_daemon(tmp_path, model_dir, monkeypatch):
    env = {**os.environ, **pipeline_env(tmp_path, model_dir, **encoder_env(HASHING_ENCODER))}
    load_sample_data(f"sqlite:///{tmp_path / 'content.db'}")
    workspace = ["-w", str(REPO / "workspace.yaml")]
    backfill = subprocess.run(
        [str(BIN / "dagster"), "job", "backfill", *workspace, "-j", "embed", "--all", "--noprompt"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr[-2000:]
    with dagster_daemon(env, tmp_path / "daemon.log"):
        # A search (or any other process) holds the embedded folder while the first runs reach Qdrant.
        holder = hold_store(tmp_path / "qdrant")  # until the first run waits for it
        try:
            monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
            with dg.DagsterInstance.get() as instance:
                # The backfill's nine runs (the types and the topics), and the sensor's first-tick run alongside them.
                runs = _wait_for_runs(instance, at_least=len(PARTITIONS), timeout=600)
                failed = [
                    (r.tags.get("dagster/partition"), r.status) for r in runs if r.status != dg.DagsterRunStatus.SUCCESS
                ]
                assert failed == [], (tmp_path / "daemon.log").read_text()[-3000:]
                backfilled = sorted(r.tags["dagster/partition"] for r in runs if "dagster/backfill" in r.tags)
                assert backfilled == sorted(PARTITIONS)
            assert holder.wait() == 0
        finally:
            holder.kill()
    qdrant = resource("qdrant", path=str(tmp_path / "qdrant"))
    with qdrant.get_store() as store:
        types = {payload["resource_type"] for _, payload in store.scroll(qdrant.alias("resources"))}
    assert types == set(RESOURCE_TYPES)
