"""`embedding-pipeline`: set up the embedded default, embed partitions, search the collections."""

import argparse
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterExecutionInterruptedError, Failure

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.instance import ensure_dagster_home
from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partitions import PARTITIONS, RESOURCE_TYPES
from embedding_pipeline.settings import (
    DEFAULT_DENSE_MODEL,
    DEFAULT_ENCODER,
    SettingError,
    Settings,
    load_env_file,
    masked,
    settings_table,
)
from embedding_pipeline.vector_store import (
    SEARCH_WAIT_SECONDS,
    MissingCollection,
    StoreBusy,
    UnknownResource,
)

INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# The old `generate_embeddings` command's flag for each resource type.
TYPE_FLAGS = {
    "courses": "course",
    "programs": "program",
    "learning_paths": "learning_path",
    "podcasts": "podcast",
    "podcast_episodes": "podcast_episode",
    "videos": "video",
    "video_playlists": "video_playlist",
    "documents": "document",
}


def setup(args: argparse.Namespace) -> None:
    from embedding_pipeline.sample_data import EVERY_SAMPLE, load_sample_data

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    home = ensure_dagster_home(settings)
    print(f"Dagster home: {home}")
    if settings.qdrant_encoder == DEFAULT_ENCODER and settings.qdrant_dense_model == DEFAULT_DENSE_MODEL:
        from embedding_pipeline.offline_model import build_minilm_onnx

        path = build_minilm_onnx(Path(settings.qdrant_dense_model_path))
        print(f"Dense model {settings.qdrant_dense_model}: {path}")
    resources, files = load_sample_data(
        settings.content_database_url, replace=args.replace_sample, samples=EVERY_SAMPLE
    )
    print(f"Content database holds {resources} learning resources and {files} content files")


def embed_run_config(
    overwrite: bool = False,
    reembed: bool = False,
    recreate_collections: bool = False,
    resource_ids: list[int] | None = None,
    skip_content_files: bool = False,
    allow_mass_deletion: bool = False,
) -> dict:
    """The embed job's run config for the old command's flags: what the launchpad or `--config` takes."""
    options = {
        "force_reembed": overwrite,
        "reembed": reembed,
        "recreate_collections": recreate_collections,
        "resource_ids": resource_ids or [],
        "skip_content_files": skip_content_files,
        "allow_mass_deletion": allow_mass_deletion,
    }
    changed = {key: value for key, value in options.items() if value}
    return {**INFO_LOGS, **({"resources": {"embed_options": {"config": changed}}} if changed else {})}


def chosen_partitions(args: argparse.Namespace) -> list[str]:
    """`--all` or no choice: every type and the topics; else the types of the flags and `--partition`, in
    partition order."""
    chosen = set(args.partition or []) | {TYPE_FLAGS[flag] for flag in TYPE_FLAGS if getattr(args, flag)}
    if args.all or not chosen:
        return list(PARTITIONS)
    return [p for p in PARTITIONS if p in chosen]


def embed(args: argparse.Namespace) -> None:
    import dagster as dg

    from embedding_pipeline.assets.embed import INTERRUPTED, SHARED_CAUSES
    from embedding_pipeline.definitions import defs
    from embedding_pipeline.resources.encoders.fastembed import release_models
    from embedding_pipeline.resources.qdrant import keep_store_open
    from embedding_pipeline.run_workers import fail_dead_runs

    ensure_dagster_home(Settings.from_env())
    console = dg.LoggerDefinition(_console_logger, config_schema=dg.colored_console_logger.config_schema)
    job = defs.resolve_job_def("embed").with_logger_defs({"console": console})
    whole = not (args.resource_ids or args.skip_contentfiles)  # a part of a partition leaves the rest as it is
    failed = []
    with dg.DagsterInstance.get() as instance, keep_store_open(), _stop_on_ctrl_c() as interrupted:
        fail_dead_runs(instance, _warn)  # a run of an earlier command that was killed, when no daemon did so
        partitions, tags, side_by_side = _prepare(args)
        # With a remote encoder the partitions go in one range run, which embeds them side by side; the
        # collections that --recreate-collections drops are dropped by a run of the first partition alone.
        if not side_by_side:
            runs = [[partition] for partition in partitions]
        else:
            runs = [partitions[:1], partitions[1:]] if args.recreate_collections else [partitions]
        for run in filter(None, runs):
            run_config = embed_run_config(
                overwrite=args.overwrite,
                reembed=args.reembed,
                recreate_collections=args.recreate_collections and run[0] == partitions[0],  # dropped once
                resource_ids=args.resource_ids,
                skip_content_files=args.skip_contentfiles,
                allow_mass_deletion=args.allow_mass_deletion,
            )
            key, range_tags = _run_of(run)
            result = job.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, run_config=run_config,
                tags={**tags, **range_tags},
            )  # fmt: skip
            for partition, reason, cause in _outcomes(result, run, whole):
                print(f"{partition}: {'FAILED: ' + reason if reason else 'ok'} (run {result.run_id})")
                if reason:
                    failed.append(partition)
                if interrupted or reason == INTERRUPTED or _interrupted(result):
                    sys.exit(f"Interrupted: stopped at {partition}; run the command again to finish")
                if cause in SHARED_CAUSES:
                    sys.exit(f"Stopped at {partition}: the other partitions would fail the same way")
        release_models()  # the store builds its indexes as it closes: with the models' memory given back
    if failed:
        sys.exit(f"Failed partitions: {', '.join(failed)}")


def _run_of(partitions: list[str]) -> tuple[str | None, dict[str, str]]:
    """The partition key of a run of one partition, or the tags of a range run over these."""
    from embedding_pipeline.assets.embed import PARTITIONS_TAG
    from embedding_pipeline.sensors import RANGE_END_TAG, RANGE_START_TAG

    if len(partitions) == 1:
        return partitions[0], {}
    return None, {RANGE_START_TAG: partitions[0], RANGE_END_TAG: partitions[-1], PARTITIONS_TAG: ",".join(partitions)}


def _outcomes(result, partitions: list[str], whole: bool) -> Iterator[tuple[str, str | None, str | None]]:
    """(partition, why it failed or None, the failure's cause) for each partition of the run that ended; a range
    run's partitions that did not begin (it stopped before them) are left out."""
    from embedding_pipeline.assets.embed import FAILED_PARTITIONS

    if len(partitions) == 1:
        reason = _reason(result) if not result.success else _failed_check(result) if whole else None
        yield partitions[0], reason, _cause(result)
        return
    done = {e.partition for e in result.get_asset_materialization_events() if e.asset_key.path == ["qdrant_points"]}
    said = _failure_metadata(result)
    failed = said[FAILED_PARTITIONS].value if FAILED_PARTITIONS in said else {}
    stopped_at = said["partition"].value.split(", ") if "partition" in said else None  # those it was running
    for partition in partitions:
        if partition in done:
            yield partition, _failed_check(result, partition) if whole else None, None
        elif partition in failed:
            yield partition, failed[partition], None
        elif partition in (stopped_at or ()) or (not result.success and not failed and stopped_at is None):
            yield partition, _reason(result), _cause(result)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _prepare(args: argparse.Namespace) -> tuple[list[str], dict[str, str], bool]:
    """The partitions to run (those of `--resource-ids`, if given), the runs' tags and whether the encoder takes
    requests at once (a remote one: the partitions go side by side in one range run). What would fail every
    partition the same way (the model: missing, or not the one that made the collections; the content database;
    the store: unreachable, or held longer than QDRANT_LOCK_WAIT_SECONDS) stops the command here, said once;
    records no partition embeds are named."""
    from embedding_pipeline.assets.embed import NEVER_EMBEDDED_TAG
    from embedding_pipeline.content import NO_RESOURCES, ContentSourceError
    from embedding_pipeline.content.database import never_embedded_line, never_embedded_summary
    from embedding_pipeline.model_identity import ModelIdentity, collections_for

    partitions = chosen_partitions(args)
    with _built_resources(("content_source", "dense_encoder", "sparse_encoder", "qdrant")) as built:
        built.dense_encoder.check()
        database = built.content_source.database()
        never = database.unembeddable(RESOURCE_TYPES)
        if database.holds_no_resources():
            raise ContentSourceError(database.url, NO_RESOURCES)
        with built.qdrant.get_store(purpose="embed") as store:  # opened once, and kept for the runs (keep_store_open)
            if not (args.reembed or args.overwrite or args.recreate_collections):  # a model changed: said once, here
                models = ModelIdentity.of(built.dense_encoder, built.sparse_encoder)
                collections_for(store, built.qdrant.collection_names(), models, reembed=False)
        if never:
            print(never_embedded_line(never))
        if args.resource_ids:
            partitions = _partitions_of(database, args.resource_ids, partitions)
        side_by_side = built.dense_encoder.concurrency > 1
    return partitions, {NEVER_EMBEDDED_TAG: never_embedded_summary(never)} if never else {}, side_by_side


def _partitions_of(database, ids: list[int], partitions: list[str]) -> list[str]:
    """The partitions of these resources; ids not found are named."""
    types = database.resource_types(ids, partitions)
    missing = [i for i in ids if i not in types]
    if missing:
        print(f"Not found among the published resources of {', '.join(partitions)}: {', '.join(map(str, missing))}")
    found = [p for p in partitions if p in types.values()]
    if not found:
        sys.exit("None of the resource ids was found: nothing to embed")
    return found


@contextmanager
def _stop_on_ctrl_c() -> Iterator[list]:
    """Ctrl-C ends the run in progress (it fails, keeping its finished batches) and the command after it."""
    interrupted: list[int] = []

    def interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield interrupted  # an interrupt between two runs, or in Dagster's own code, ends in main()
    finally:
        signal.signal(signal.SIGINT, previous)


def _console_logger(init_context) -> logging.Logger:
    """Dagster's console logger, less the failures this command says in a line of its own: a named problem
    (a `Failure`, not a bug) shows as `partition: FAILED: reason`, its stack trace kept in the UI's event log."""
    import dagster as dg

    logger = dg.colored_console_logger.logger_fn(init_context)
    logger.addFilter(_not_a_named_failure)
    return logger


def _not_a_named_failure(record: logging.LogRecord) -> bool:
    event = getattr(record, "dagster_meta", {}).get("dagster_event")
    error = getattr(event and event.event_specific_data, "error", None)
    return error is None or error.cls_name != "Failure"


def _reason(result) -> str:
    """Why a run failed, in a line (the traceback is in the log above and in the UI)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name != "Failure":
                error = error.cause
            line = error.message.strip().splitlines()[0] if error.message.strip() else error.cls_name
            where, _, said = line.partition(": ")  # "package.module.Class: what it says"
            return said if said and " " not in where else line
    return "see the log above"


def _cause(result) -> str | None:
    """The class of the error a failed run named as its cause (`embed_partition` puts it in the failure)."""
    cause = _failure_metadata(result).get("cause")
    return cause.value if cause is not None else None


def _interrupted(result) -> bool:
    """Ctrl-C reached Dagster's own code (its handler, not ours, holds SIGINT while a run executes) rather than
    the step's: the run failed with Dagster's interrupt instead of the step's INTERRUPTED."""
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            if error.cls_name in ("DagsterExecutionInterruptedError", "KeyboardInterrupt"):
                return True
            error = error.cause
    return False


def _failure_metadata(result) -> dict:
    """The metadata of the `Failure` a failed run raised (its cause, its partition, a range run's failed ones)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.user_failure_data is not None:
            return dict(event.step_failure_data.user_failure_data.metadata)
    return {}


def _failed_check(result, partition: str | None = None) -> str | None:
    """A run (or a range run's `partition`) that wrote but left Qdrant out of step with the source, or of another
    dimension, in a line."""
    from embedding_pipeline.assets.checks import DENSE_DIMENSION, POINTS_MATCH_SOURCE, SHARED_KEYS

    for check in result.get_asset_check_evaluations():
        if check.passed or check.check_name not in (POINTS_MATCH_SOURCE, DENSE_DIMENSION):
            continue
        if partition is not None and check.partition != partition:
            continue
        found = {name: value.value for name, value in check.metadata.items()}
        if check.check_name == DENSE_DIMENSION:
            return f"{DENSE_DIMENSION} failed: the encoder makes {found['encoder_dimension']}, Qdrant holds {found['collections']}"
        shared = found.get(SHARED_KEYS)
        if shared:  # its records' points are another type's: missing until one of the two changes
            first = shared.splitlines()[0].removeprefix("- ")
            return (
                f"{POINTS_MATCH_SOURCE} failed: {first} (mit-learn's point id is the platform and readable_id, "
                "whatever the type: give one of the two records another readable_id, or unpublish one)"
            )
        wrong = found.get("points_answered_wrongly", "none")
        if wrong != "none":
            first = wrong.splitlines()[0].removeprefix("- ")
            return f"{POINTS_MATCH_SOURCE} failed: Qdrant answers wrongly for stored points ({first}); see `repair`"
        return (
            f"{POINTS_MATCH_SOURCE} failed: Qdrant holds {found['points_in_qdrant']} of this type's points where the source "
            f"asks for {found['expected_points']} ({found['missing_points']} missing, {found['extra_points']} extra, "
            f"{found['records_out_of_date']} records out of date); the next run lists every point and writes what is missing"
        )
    return None


def resource_ids(text: str) -> list[int]:
    """`1,2,3` as the old command takes it."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ids separated by commas, e.g. 1,2,3; got {text!r}") from None


def _built_resources(names: tuple[str, ...]) -> dict:
    import dagster as dg

    from embedding_pipeline.resources import build_resources

    resources = build_resources(Settings.from_env())
    return dg.build_resources({name: resources[name] for name in names})


def _filters(args: argparse.Namespace) -> dict | None:
    filters = {"resource_type": args.resource_type, "platform.code": args.platform}
    return {field: value for field, value in filters.items() if value} or None


def search(args: argparse.Namespace) -> None:
    from embedding_pipeline.search import search as run_search

    with _built_resources(("qdrant", "dense_encoder", "sparse_encoder")) as built:
        hits = run_search(
            built.qdrant, built.dense_encoder, built.sparse_encoder, args.query, collection=args.collection,
            hybrid=args.hybrid, limit=args.limit, filters=_filters(args), wait_seconds=args.wait,
        )  # fmt: skip
    _print_hits(hits, args.json, chunks=args.collection == "content_files")


def similar(args: argparse.Namespace) -> None:
    from embedding_pipeline.search import similar as run_similar

    with _built_resources(("qdrant", "dense_encoder")) as built:
        hits = run_similar(
            built.qdrant, built.dense_encoder, args.resource, limit=args.limit, filters=_filters(args),
            wait_seconds=args.wait,
        )  # fmt: skip
    _print_hits(hits, args.json, chunks=False)


def _print_hits(hits: list[dict], as_json: bool, chunks: bool) -> None:
    if as_json:
        print(json.dumps(hits, indent=2, default=str))
        return
    if not hits:
        print("No results.")
    for rank, hit in enumerate(hits, start=1):
        title = hit.get("title") or hit.get("key")
        name = (
            f"{(hit.get('platform') or {}).get('code', '')}.{hit.get('readable_id') or hit.get('resource_readable_id')}"
        )
        kind = hit.get("resource_type") or hit.get(OWN, {}).get("resource_type")  # a chunk's document has none
        print(f"{rank:2}. {hit['score']:.4f}  [{kind}] {title}  ({name})")
        if chunks:
            start = " ".join(hit.get("chunk_content", "").split())[:160]
            print(f"      {hit.get('title')} (chunk {hit.get('chunk_number')}): {start}…")


def show_settings(args: argparse.Namespace) -> None:
    """Check the settings as every command would, then list them (secrets hidden), or the table of all."""
    if args.table:
        print(settings_table())
        return
    from embedding_pipeline.resources import in_use, reader_defaults

    settings = Settings.from_env()
    used = in_use(settings)  # an encoder's own model where QDRANT_DENSE_MODEL or QDRANT_SPARSE_MODEL_V2 is not set
    for name, value in settings.model_dump().items():
        print(f"{name} = {masked(str(used.get(name, value)))}")
    for note in reader_defaults(settings):
        print(f"note: {note}")


def repair(args: argparse.Namespace) -> None:
    """Rebuild the embedded store's damaged collections from what can be read, then embed what could not."""
    from embedding_pipeline.model_identity import ModelIdentity, collections_made_by
    from embedding_pipeline.vector_store import COLLECTION_KINDS, collection_spec
    from embedding_pipeline.vector_store.repair import lost_line, points_lost, repair_collection

    if Settings.from_env().qdrant_host:
        sys.exit(
            "QDRANT_HOST is set: `repair` rebuilds the embedded store; a Qdrant server recovers from its snapshots"
        )
    lost = 0
    with _built_resources(("qdrant", "dense_encoder", "sparse_encoder")) as built:
        dense, sparse = built.dense_encoder, built.sparse_encoder
        with built.qdrant.get_store(purpose="repair") as store:
            names = collections_made_by(store, built.qdrant.collection_names(), ModelIdentity.of(dense, sparse))
            gone = points_lost(store, [names.physical(kind) for kind in COLLECTION_KINDS])
            for kind in COLLECTION_KINDS:
                name = names.physical(kind)
                spec = collection_spec(kind, dense.vector_name, dense.dim, sparse.vector_name, sparse.uses_idf)
                if name in gone:  # said, and made again where its folder went: the run below writes what is missing
                    print(lost_line(name, *gone[name]))
                    lost += gone[name][1] - (gone[name][0] or 0)
                    if gone[name][0] is None:
                        store.create_collection(name, spec)
                if store.collection_exists(name):
                    said: list[str] = []  # a collection that lost points is not "every point can be read"
                    lost += repair_collection(store, name, spec, said.append)
                    for line in said:
                        if name not in gone or not line.endswith("can be read"):
                            print(line)
    if lost:
        print("Writing again what could not be read:")
        embed(parser().parse_args(["embed"]))


def _query_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resource-type", choices=RESOURCE_TYPES, help="Only hits of this resource type.")
    p.add_argument("--platform", help="Only hits of this platform (its code, e.g. ocw).")
    p.add_argument("--json", action="store_true", help="Print the hits with their payloads as JSON.")
    p.add_argument(
        "--wait", type=float, default=SEARCH_WAIT_SECONDS, metavar="SECONDS",
        help="How long to wait for a run that holds the embedded Qdrant (default %(default)s).",
    )  # fmt: skip


def _embed_parser(commands) -> None:
    p = commands.add_parser(
        "embed",
        help="Run the embed job for resource-type partitions (default: all); the old generate_embeddings flags.",
    )
    p.add_argument("--all", action="store_true", help="Every resource type (the default).")
    for flag, partition in TYPE_FLAGS.items():
        p.add_argument(f"--{flag}", action="store_true", help=f"The {partition} partition.")
    p.add_argument("--partition", action="append", choices=PARTITIONS, help="Repeat for several.")
    p.add_argument(
        "--resource-ids", type=resource_ids, metavar="1,2,3",
        help="Embed only these learning resources and their content files; their types' partitions run.",
    )  # fmt: skip
    p.add_argument(
        "--skip-contentfiles", action="store_true",
        help="Embed the learning resources only; content-file points stay as they are.",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="Embed and write every record again (force_reembed).")
    p.add_argument(
        "--reembed", action="store_true",
        help="Models changed in place (new files, new weights under the same name): re-embed into collections of "
        "their own; searches move to them once every partition is done (reembed).",
    )  # fmt: skip
    p.add_argument(
        "--allow-mass-deletion", action="store_true",
        help="Let a run delete more than QDRANT_MAX_DELETE_SHARE of a partition's points (the source lost them).",
    )  # fmt: skip
    p.add_argument(
        "--recreate-collections", action="store_true",
        help="Drop the collections first, then embed the chosen partitions into new ones.",
    )  # fmt: skip
    p.set_defaults(func=embed)


def _query_parsers(commands) -> None:
    p = commands.add_parser("search", help="Search the collections.")
    p.add_argument("query")
    p.add_argument("--collection", choices=["resources", "content_files"], default="resources")
    p.add_argument("--hybrid", action="store_true", help="Fuse dense and BM25 results with RRF.")
    p.add_argument("--limit", type=int, default=5)
    _query_options(p)
    p.set_defaults(func=search)

    p = commands.add_parser("similar", help="Resources similar to one (the similar-resources carousel).")
    p.add_argument("resource", metavar="PLATFORM.READABLE_ID")
    p.add_argument("--limit", type=int, default=5)
    _query_options(p)
    p.set_defaults(func=similar)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="embedding-pipeline", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    p = commands.add_parser("setup", help="Build the offline dense model and load the sample content.")
    p.add_argument("--replace-sample", action="store_true", help="Reload the sample even if the database has rows.")
    p.set_defaults(func=setup)
    _embed_parser(commands)
    _query_parsers(commands)
    p = commands.add_parser("settings", help="Check the settings and print them (secrets hidden).")
    p.add_argument("--table", action="store_true", help="Print the table of every setting (as in docs/settings.md).")
    p.set_defaults(func=show_settings)
    p = commands.add_parser(
        "repair", help="Rebuild damaged collections of the embedded store from what can be read; embed the rest."
    )
    p.set_defaults(func=repair)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    load_env_file()  # the current folder's .env, once, as Dagster's own commands load it
    if args.command != "settings":
        try:
            Settings.from_env()  # a setting that cannot work stops here, before any run
        except SettingError as error:
            sys.exit(str(error))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedding_pipeline").setLevel(logging.INFO)
    try:
        args.func(args)
    except (MissingCollection, StoreBusy, PermanentError, UnknownResource) as error:
        sys.exit(str(error))
    except Failure as error:  # a named problem of a setting (the content database, Qdrant, the model)
        sys.exit(error.description)
    except (KeyboardInterrupt, DagsterExecutionInterruptedError):  # Ctrl-C anywhere (a waiting search...): one line
        sys.exit("Interrupted")


if __name__ == "__main__":
    main()
