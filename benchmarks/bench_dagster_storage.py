"""Is keeping SQLite connections open (embedding_pipeline/dagster_storage.py) worth depending on Dagster's
private storage classes? Runs the benchmark's floor step (eight in-process runs of an empty step shaped like
the pipeline's: five assets, four checks) with Dagster's own SQLite storage and with the project's, each in a
fresh process on a fresh DAGSTER_HOME, `--repeats` times in turn, and prints the medians and their ratio.

    .venv/bin/python benchmarks/bench_dagster_storage.py [--repeats 5]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STORAGES = {
    "Dagster's SQLite storage": "storage:\n  sqlite:\n    base_dir: {home}\n",
    "kept connections (dagster_storage.py)": (REPO / "dagster.yaml").read_text(),
}
RUNS = """
import json, sys, time
sys.path.insert(0, "{benchmarks}")
import dagster as dg
from bench_embed import floor_step
with dg.DagsterInstance.get():  # the storage's modules loaded, as in any process, before the clock starts
    pass
print(json.dumps(floor_step()))
"""


RUNS_PER_PROCESS = 8  # the floor step's: one per partition


def measure(config: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text(config.replace("{home}", home))
        script = RUNS.format(benchmarks=REPO / "benchmarks")
        done = subprocess.run(
            [sys.executable, "-c", script], env={"DAGSTER_HOME": home, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(done.stdout.splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {name: [] for name in STORAGES}
    for _ in range(args.repeats):
        for name, config in STORAGES.items():
            seconds[name].append(measure(config))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(
            f"{name}: median {medians[name]:.2f} s for {RUNS_PER_PROCESS} runs ({', '.join(f'{v:.2f}' for v in values)})"
        )
    own, kept = medians.values()
    print(
        f"Dagster's own ÷ kept connections: {own / kept:.2f}; {1000 * (own - kept) / RUNS_PER_PROCESS:.0f} ms saved per run"
    )


if __name__ == "__main__":
    main()
