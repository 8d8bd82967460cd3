"""`embedding-pipeline`: set up the embedded default, embed partitions, search the collections."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from embedding_pipeline.partitions import RESOURCE_TYPES
from embedding_pipeline.settings import DEFAULT_DENSE_MODEL, DEFAULT_ENCODER, Settings
from embedding_pipeline.vector_store import SEARCH_WAIT_SECONDS, LocalModeStore, MissingCollection, StoreBusy

INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME (default ./.dagster_home) exists and uses the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and PROJECT_DAGSTER_YAML.exists():
        config.symlink_to(PROJECT_DAGSTER_YAML)
    return home


def setup(args: argparse.Namespace) -> None:
    from embedding_pipeline.sample_data import load_sample_data

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    home = ensure_dagster_home()
    print(f"Dagster home: {home}")
    if settings.qdrant_encoder == DEFAULT_ENCODER and settings.qdrant_dense_model == DEFAULT_DENSE_MODEL:
        from embedding_pipeline.offline_model import build_minilm_onnx

        path = build_minilm_onnx(Path(settings.qdrant_dense_model_path))
        print(f"Dense model {settings.qdrant_dense_model}: {path}")
    resources, files = load_sample_data(settings.content_database_url, replace=args.replace_sample)
    print(f"Content database holds {resources} learning resources and {files} content files")


def embed(args: argparse.Namespace) -> None:
    import dagster as dg

    from embedding_pipeline.definitions import defs

    ensure_dagster_home()
    job = defs.get_job_def("embed")
    failed = []
    with dg.DagsterInstance.get() as instance:
        for partition in args.partition or RESOURCE_TYPES:
            result = job.execute_in_process(
                partition_key=partition, instance=instance, raise_on_error=False, run_config=INFO_LOGS
            )
            print(f"{partition}: {'ok' if result.success else 'FAILED'} (run {result.run_id})")
            if not result.success:
                failed.append(partition)
    if failed:
        sys.exit(f"Failed partitions: {', '.join(failed)}")


def search(args: argparse.Namespace) -> None:
    import dagster as dg

    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.search import search as run_search

    resources = build_resources(Settings.from_env())
    keys = ("qdrant", "dense_encoder", "sparse_encoder")
    with dg.build_resources({k: resources[k] for k in keys}) as built:
        hits = run_search(
            built.qdrant, built.dense_encoder, built.sparse_encoder, args.query,
            collection=args.collection, hybrid=args.hybrid, limit=args.limit, wait_seconds=args.wait,
        )  # fmt: skip
    if args.json:
        print(json.dumps(hits, indent=2, default=str))
        return
    if not hits:
        print("No results.")
    for rank, hit in enumerate(hits, start=1):
        title = hit.get("resource_title") or hit.get("title")
        print(f"{rank:2}. {hit['score']:.4f}  [{hit.get('resource_type')}] {title}")
        if args.collection == "content_files":
            start = " ".join(hit.get("chunk_content", "").split())[:160]
            print(f"      {hit.get('title')} (chunk {hit.get('chunk_number')}): {start}…")


def migrate_store(args: argparse.Namespace) -> None:
    from embedding_pipeline.vector_store.migrate import migrate_local_mode_store

    settings = Settings.from_env()
    if settings.qdrant_host:
        sys.exit("QDRANT_HOST is set: a Qdrant server needs no migration")
    copied = migrate_local_mode_store(settings.qdrant_path)
    print(
        f"Migrated {sum(copied.values())} points in {len(copied)} collections to the Qdrant engine in {settings.qdrant_path}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="embedding-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("setup", help="Build the offline dense model and load the sample content.")
    p.add_argument("--replace-sample", action="store_true", help="Reload the sample even if the database has rows.")
    p.set_defaults(func=setup)

    p = commands.add_parser("embed", help="Run the embed job for resource-type partitions (default: all).")
    p.add_argument("--partition", action="append", choices=RESOURCE_TYPES, help="Repeat for several.")
    p.set_defaults(func=embed)

    p = commands.add_parser("search", help="Search the collections.")
    p.add_argument("query")
    p.add_argument("--collection", choices=["resources", "content_files"], default="resources")
    p.add_argument("--hybrid", action="store_true", help="Fuse dense and BM25 results with RRF.")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--json", action="store_true", help="Print the hits with their payloads as JSON.")
    p.add_argument(
        "--wait", type=float, default=SEARCH_WAIT_SECONDS, metavar="SECONDS",
        help="How long to wait for a run that holds the embedded Qdrant (default %(default)s).",
    )  # fmt: skip
    p.set_defaults(func=search)

    p = commands.add_parser(
        "migrate-store", help="Copy an embedded store written by qdrant-client's local mode into the Qdrant engine."
    )
    p.set_defaults(func=migrate_store)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedding_pipeline").setLevel(logging.INFO)
    try:
        args.func(args)
    except (MissingCollection, StoreBusy, LocalModeStore) as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
