"""The five pipeline assets of a partition, made by one step that streams the partition batch by batch.

source_content ─► text_chunks ─► dense_vectors ─┐
                               └► sparse_vectors ─┴► qdrant_points

A partition can hold a million chunks, so no step may hold it whole: records are read, chunked,
embedded and written `batch_size` at a time (`embedding_pipeline.partition`), and Qdrant is where
the vectors and the "already embedded" state live. One step does it, since each batch goes all the
way through; Dagster still sees the five assets, each with its own metadata. This module is only
the Dagster face: it reads the resources, calls the partition's run and reports what it did.
"""

import functools
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from embedding_pipeline.assets.checks import CHECK_SPECS, chunk_checks, qdrant_checks
from embedding_pipeline.assets.metadata import materializations
from embedding_pipeline.assets.state import PartitionState
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.interrupts import STOP
from embedding_pipeline.model_identity import ModelIdentity, collections_for, collections_made_by
from embedding_pipeline.partition.run import Partition, check_partition, move_aliases, run_partition
from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.resources.encoders.base import DenseEncoder, SparseEncoderBase
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource, keep_store_open
from embedding_pipeline.run_workers import claim_run

RETRIES = dg.RetryPolicy(max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
INTERRUPTED = "Interrupted (Ctrl-C or a terminate): the batches written so far stay done; run again to finish"


def _spec(key: str, description: str, deps: list[str], kinds: set[str], code_version: str | None = None):
    return dg.AssetSpec(
        key, description=description, deps=deps, kinds=kinds, group_name="embeddings",
        partitions_def=resource_type_partitions, code_version=code_version,
        skippable=True,  # a range run reports each partition's materializations itself (`_reported`)
    )  # fmt: skip


SPECS = [
    _spec(
        "source_content",
        "The partition's published learning resources and content files, as the content database lists "
        "them; its metadata counts them (new, changed, unchanged; deleted: those Qdrant holds that it no longer "
        "lists).",
        [], {"sql"},
    ),
    _spec(
        "text_chunks",
        "One text per Qdrant point: a resource's title, descriptions and topics; a content file's "
        "token-sized chunks, Markdown split on headers first. Only new and changed records are chunked.",
        ["source_content"], {"tiktoken"}, "chunks-2",
    ),
    _spec(
        "dense_vectors",
        "The dense vector of every chunk, named after the model; a text Qdrant already holds is not embedded again.",
        ["text_chunks"], {"onnx"}, "dense-2",
    ),
    _spec("sparse_vectors", "The BM25 vector of every chunk (Qdrant applies the IDF).", ["text_chunks"], {"onnx"}, "sparse-2"),
    _spec(
        "qdrant_points",
        "The partition's points in {base}.resources and {base}.content_files: new and changed ones written, "
        "deleted records' removed, indexes built.",
        ["text_chunks", "dense_vectors", "sparse_vectors"], {"qdrant"}, "points-2",
    ),
]  # fmt: skip


@dg.multi_asset(
    name="embed_partition",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=resource_type_partitions,
    retry_policy=RETRIES,
    can_subset=True,  # the checks can be executed alone, against what Qdrant holds now
)
def embed_partition(
    context: dg.AssetExecutionContext,
    content_source: ContentSource,
    chunker: TextChunker,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoderBase,
    qdrant: QdrantResource,
    embed_options: EmbedOptions,
) -> Iterator:
    """Reads the partition's new and changed records, chunks, embeds and writes them, batch by batch.

    Unchanged records cost nothing but their line in the listing; a run that dies resumes after the
    last batch it finished; a record that cannot be read or embedded keeps its points and is named.
    A run over a range of partitions (the sensor's for a small change, `embed` with a remote encoder) does
    them in one process with one model, and reports each partition's materializations and checks as its own.
    """
    claim_run(context.instance, context.run.run_id)  # a later run can tell if this one is killed
    resources = StepResources(content_source, chunker, dense_encoder, sparse_encoder, qdrant, embed_options)
    if context.has_partition_key:
        yield from _selected(context, _results(context, context.partition_key, resources))
        return
    failed: dict[str, str] = {}
    for partition, results in _partition_results(context, partitions_of_run(context), resources):
        if isinstance(results, dg.Failure):
            cause = results.metadata.get("cause")
            if results.description == INTERRUPTED or (cause is not None and cause.value in SHARED_CAUSES):
                raise results  # every other partition would meet it too
            context.log.error(f"{partition}: {results.description}")
            failed[partition] = results.description
            continue
        yield from _reported(context, partition, results)
    if failed:
        raise dg.Failure(
            f"Partitions that failed: {', '.join(failed)} (each named above)",
            allow_retries=False,
            metadata={FAILED_PARTITIONS: dg.MetadataValue.json(failed)},
        )


# Partitions a range run reads side by side with a remote encoder: while one waits for its last answers and
# finishes, the next is listed and read (the encoder holds their requests to LITELLM_MAX_CONCURRENT_REQUESTS).
PARTITIONS_AT_ONCE = 2
READ_ALL = object()  # a partition's word that it has read its last batch


def _partition_results(context, partitions: list[str], resources: "StepResources") -> Iterator[tuple[str, object]]:
    """(partition, its results or its Failure), as each ends. A model that runs here takes every core: one
    partition after another, in this thread. A remote encoder: each partition in a thread of its own,
    PARTITIONS_AT_ONCE of them reading at once, the next begun as soon as one has read its last batch (partitions
    of one size would otherwise end together and leave the provider idle while both verify and the next two
    list their records); all share one open store. On Ctrl-C, a terminate or a failure every partition would
    meet, those at work stop at their next batch (`interrupts.STOP`), keeping what they wrote."""
    if resources.dense_encoder.concurrency > 1 and len(partitions) > 1:
        yield from _side_by_side(context, partitions, resources)
        return
    for partition in partitions:
        try:
            yield partition, _results(context, partition, resources)
        except dg.Failure as failure:
            yield partition, failure


def _side_by_side(context, partitions: list[str], resources: "StepResources") -> Iterator[tuple[str, object]]:
    events: queue.Queue = queue.Queue()  # (partition, READ_ALL | its results | its Failure, an error to raise)

    def run(partition: str) -> None:
        try:
            read_all = functools.partial(events.put, (partition, READ_ALL, None))
            events.put((partition, _results(context, partition, resources, read_all), None))
        except dg.Failure as failure:
            events.put((partition, failure, None))
        except BaseException as error:  # noqa: BLE001 (raised in the step's thread, below)
            events.put((partition, None, error))

    waiting, running, reading = list(partitions), [], set()
    with keep_store_open():  # one store for the partitions at once (a process holds the embedded folder once)
        try:
            while waiting or running:
                while waiting and len(reading) < PARTITIONS_AT_ONCE and len(running) <= PARTITIONS_AT_ONCE:
                    running.append(waiting.pop(0))
                    reading.add(running[-1])
                    threading.Thread(target=run, args=(running[-1],), name="embed-partition", daemon=True).start()
                partition, outcome, error = events.get()
                reading.discard(partition)
                if outcome is READ_ALL:
                    continue
                running.remove(partition)
                if error is not None:
                    raise error
                yield partition, outcome
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
            metadata = {"partition": ", ".join(running)}
            raise dg.Failure(INTERRUPTED, allow_retries=False, metadata=metadata) from None
        finally:
            if running:
                STOP.set()
                while running:
                    partition, outcome, _ = events.get()
                    if outcome is not READ_ALL:
                        running.remove(partition)
            STOP.clear()


# Failures every partition would meet alike: a run over several, and `embedding-pipeline embed`, stop at the first.
SHARED_CAUSES = {
    "StoreUnavailable",
    "StoreBusy",
    "StoreDamaged",
    "StoreFull",
    "ModelMissing",
    "ContentSourceError",
    "SettingError",
    "ModelChanged",
}
PARTITIONS_TAG = "embedding_pipeline/partitions"  # of a range run: the partitions in it to embed (the sensor's)
NEVER_EMBEDDED_TAG = "embedding_pipeline/never_embedded"  # what no partition embeds, as the run's requester saw it
FAILED_PARTITIONS = "failed_partitions"  # a range run's failure: partition → why, for each that failed on its own


def partitions_of_run(context: dg.AssetExecutionContext) -> list[str]:
    """The partitions a range run embeds: those its PARTITIONS_TAG names, or every one in the range."""
    named = context.run.tags.get(PARTITIONS_TAG)
    keys = context.partition_keys
    return [key for key in keys if key in named.split(",")] if named else keys


@dataclass(frozen=True)
class StepResources:
    """The resources Dagster gives the step, handed on as one."""

    content_source: ContentSource
    chunker: TextChunker
    dense_encoder: DenseEncoder
    sparse_encoder: SparseEncoderBase
    qdrant: QdrantResource
    embed_options: EmbedOptions
    _models: list = field(default_factory=list)  # the models' identity, once known
    _knowing: threading.Lock = field(default_factory=threading.Lock)

    def models(self) -> ModelIdentity:
        """Which models make the vectors: known once per step, for all its partitions (a remote model's probe is
        one request)."""
        with self._knowing:
            if not self._models:
                self._models.append(ModelIdentity.of(self.dense_encoder, self.sparse_encoder))
            return self._models[0]


def _results(context, partition: str, resources: StepResources, read_all=lambda: None) -> list:
    """The partition's materializations and check results, once its run (or its checks alone) is done."""
    try:
        if not context.selected_asset_keys:  # the checks alone, on what Qdrant holds now
            return _checks_alone(context, partition, resources)
        return _embed(context, partition, resources, read_all)
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):  # Dagster would retry it, as an error
        raise dg.Failure(INTERRUPTED, allow_retries=False, metadata={"partition": partition}) from None
    except PermanentError as error:  # a setting, a missing model, a wrong database: retrying won't help
        metadata = {"cause": type(error).__name__, "partition": partition}
        raise dg.Failure(str(error), allow_retries=False, metadata=metadata) from None


@contextmanager
def _partition(
    context, partition: str, resources: StepResources, step: str, read_all=None, reembed: bool | None = None
) -> Iterator[Partition]:
    """The partition's reader, store and models for one `with` block: the collections it writes are those its
    models made (a run whose models made none is refused unless it is a `reembed`); the checks alone (`reembed`
    None) look at those, or at this version's."""
    qdrant, database, models = resources.qdrant, resources.content_source.database(), resources.models()
    with database.reader(partition) as reader, qdrant.get_store_for_step(context, partition, step) as store:
        if reembed is None:
            names = collections_made_by(store, qdrant.collection_names(), models)
        else:
            names = collections_for(store, qdrant.collection_names(), models, reembed)
        yield Partition(
            partition, reader, store, resources.chunker.get_chunker(), resources.dense_encoder,
            resources.sparse_encoder, names, qdrant.location, context.log, read_all or (lambda: None), models.kept(),
        )  # fmt: skip


def _checks_alone(context, partition: str, resources: StepResources) -> list:
    state = PartitionState.load(context.instance, partition)
    with _partition(context, partition, resources, "checks") as part:
        verification, sizes = check_partition(part, state.failed)  # failed records keep old points, or have none
    if not verification.passed:  # the next run compares every point and heals
        state.request_full_verification()
    return qdrant_checks(verification, sizes, resources.dense_encoder.dim)


def _embed(context, partition: str, resources: StepResources, read_all) -> list:
    """The partition's run: its state loaded, the run, its state saved, the aliases moved if a re-embed is complete."""
    qdrant, dense_encoder, sparse_encoder = resources.qdrant, resources.dense_encoder, resources.sparse_encoder
    options = resources.embed_options.run_options(
        resources.content_source.batch_size, qdrant.upload_batch_size, qdrant.max_delete_share
    )
    if options.recreate_collections and ("dagster/backfill" in context.run.tags or not context.has_partition_key):
        raise dg.Failure(
            "recreate_collections drops every partition's points, so a backfill or a run over several partitions "
            "would undo its own work; use force_reembed there, or recreate_collections in a single run",
            allow_retries=False,
        )
    dense_encoder.check()
    if options.scoped:
        context.log.info(f"{partition}: this run embeds {options.scope()}; every other record is left as it is")
    state = PartitionState.load(context.instance, partition)
    reembed = resources.embed_options.reembed or options.force or options.recreate_collections
    reembed = reembed or "dagster/backfill" in context.run.tags
    with _partition(context, partition, resources, "embed", read_all, reembed) as part:
        outcome = run_partition(part, options, state.heads_cache, verify_every_point=state.verify_every_point)
        state.save(outcome, whole=not options.scoped, version=part.names.version)
        done = not options.scoped and state.every_partition_done(part.names.version)
        move_aliases(part, outcome, done, keep_old=qdrant.keep_old_collections)
    return [
        *materializations(
            outcome,
            part.chunker,
            dense_encoder,
            sparse_encoder,
            options.scope(),
            never_embedded=context.run.tags.get(NEVER_EMBEDDED_TAG, ""),
        ),
        *chunk_checks(outcome.report),
        *qdrant_checks(outcome.verification, outcome.dense_sizes, dense_encoder.dim, outcome.report.shared_keys),
    ]


def _reported(context: dg.AssetExecutionContext, partition: str, results: list) -> Iterator:
    """A partition's results in a range run, as events of that partition (a range run's own results would
    give every partition of the range the same metadata). Materializations are stored as they are yielded,
    so that the run's later partitions see this one done."""
    for result in _selected(context, results):
        key = dg.AssetKey.from_coercible(result.asset_key)
        if isinstance(result, dg.AssetCheckResult):
            context.log_event(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=result.check_name,
                    passed=result.passed,
                    metadata=result.metadata,
                    severity=result.severity,
                    description=result.description,
                    partition=partition,
                )
            )
        else:
            yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=result.metadata)


def _selected(context: dg.AssetExecutionContext, results: list) -> Iterator:
    """The results of the assets and checks this run selected (a run may select a subset, or only checks)."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            key = dg.AssetCheckKey(dg.AssetKey.from_coercible(result.asset_key), result.check_name)
            if key in context.selected_asset_check_keys:
                yield result
        elif dg.AssetKey.from_coercible(result.asset_key) in context.selected_asset_keys:
            yield result
