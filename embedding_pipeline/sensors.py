"""new_content_sensor: an embed run for the resource types (and the topics) whose content changed since the last
tick: one run for them all when the change is small, one per type when it is large."""

import json
import time

import dagster as dg

from embedding_pipeline.assets.embed import NEVER_EMBEDDED_TAG, PARTITIONS_TAG
from embedding_pipeline.content.blocklist import BLOCKLISTED_TYPE, BlocklistUnreadable
from embedding_pipeline.content.database import NO_RESOURCES, masked_url, never_embedded_line, never_embedded_summary
from embedding_pipeline.digests import digest
from embedding_pipeline.jobs import embed_job
from embedding_pipeline.partitions import PARTITIONS, RESOURCE_TYPES
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.run_workers import fail_dead_runs

# Up to this many resources and content files saved since the last tick (all of them on the first tick), the
# changed partitions go in one run: a run process starts, imports and loads the model in 3-5 s, more than the
# embedding of a few hundred records takes, and on the embedded store runs cannot overlap anyway. Past it, each partition gets its own run, so that
# a Qdrant server takes them in parallel (up to max_concurrent_runs) and a failure redoes one partition only.
ONE_RUN_MAX_RECORDS = 2_000
# Dagster's tags of a partition-range run (a single-run backfill's): the first and the last partition of the range
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def content_sensor(interval_seconds: int = 30) -> dg.SensorDefinition:
    """`new_content_sensor`, ticking every `interval_seconds` (EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS)."""
    return dg.sensor(
        name="new_content_sensor",
        job=embed_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )(request_runs_for_changes)


def dead_runs_sensor(interval_seconds: int = 30) -> dg.SensorDefinition:
    """`dead_runs_sensor`: marks failed the runs whose worker process died (kill -9, out of memory, a reboot), so
    that they do not show as running for ever nor hold a place in the run queue (`run_workers`)."""

    def mark_dead_runs_failed(context: dg.SensorEvaluationContext):
        dead = fail_dead_runs(context.instance, context.log.warning)
        return dg.SkipReason(f"{len(dead)} dead runs marked failed" if dead else "No run's process died")

    return dg.sensor(
        name="dead_runs_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )(mark_dead_runs_failed)


def request_runs_for_changes(context: dg.SensorEvaluationContext, content_source: ContentSource):
    """Polls the content database (never Qdrant) and requests runs for the types that changed.

    The cursor keeps a marker of the whole database and a fingerprint per type: a quiet tick costs
    one single-row query; run keys carry the fingerprint, so each change is requested exactly once.
    """
    database = content_source.database()
    cursor = json.loads(context.cursor) if context.cursor else {}
    blocklist = _blocklist_digest(database, cursor.get("blocklist"), context.log.warning)
    marker = digest(database.change_marker(), blocklist)
    if marker == cursor.get("marker"):
        return dg.SkipReason("No content was added, edited, deleted or unpublished since the last tick")
    if database.holds_no_resources():  # every partition's run would refuse it: said once, the cursor kept
        return dg.SkipReason(f"CONTENT_DATABASE_URL={masked_url(database.url)}: {NO_RESOURCES}; no run requested")
    never = database.unembeddable(RESOURCE_TYPES)
    if never:
        context.log.warning(never_embedded_line(never))
    tags = {NEVER_EMBEDDED_TAG: never_embedded_summary(never)} if never else {}
    fingerprints = database.fingerprints()
    if blocklist is not None:
        fingerprints[BLOCKLISTED_TYPE] = digest(fingerprints.get(BLOCKLISTED_TYPE), blocklist)
    previous = cursor.get("types", {})
    changed = [t for t in PARTITIONS if fingerprints.get(t) != previous.get(t)]
    latest, since = database.latest_save(), cursor.get("latest_save") or 0  # a first tick: every record is new
    if latest is not None:  # a row dated in the future would hide every later save
        latest = min(latest, int(time.time() * 1000))
    saved = database.saved_since(since) if latest is not None else None
    context.update_cursor(
        json.dumps({"marker": marker, "types": fingerprints, "latest_save": latest, "blocklist": blocklist})
    )
    if not changed:
        return dg.SkipReason("The database changed, but no resource type's content did")
    since_when = "since the last tick" if since else "in all: the first tick"
    size = "" if saved is None else f" ({sum(saved.get(t, 0) for t in changed)} records saved {since_when})"
    context.log.info(f"Content changed for {', '.join(changed)}{size}")
    run_keys = {t: f"{t}:{fingerprints.get(t, 'empty')}" for t in changed}
    if len(changed) > 1 and saved is not None and sum(saved.get(t, 0) for t in changed) <= ONE_RUN_MAX_RECORDS:
        return dg.RunRequest(
            run_key="|".join(run_keys.values()),
            tags={
                **tags,
                RANGE_START_TAG: changed[0],
                RANGE_END_TAG: changed[-1],
                PARTITIONS_TAG: ",".join(changed),
            },
        )
    return [dg.RunRequest(partition_key=t, run_key=run_keys[t], tags=tags) for t in changed]


def _blocklist_digest(database, previous: str | None, warn) -> str | None:
    """A digest of the course blocklist as it reads now (None when none is set); one that cannot be read counts as
    unchanged, and is said: the course run it would ask for would stop on it anyway."""
    if not database.blocklist_url:
        return None
    try:
        return digest(sorted(database.blocklist()))
    except BlocklistUnreadable as error:
        warn(str(error))
        return previous
