"""new_content_sensor: one embed run per resource type (or the topics) whose content changed since the last tick."""

import json

import dagster as dg

from embedding_pipeline.content.database import never_embedded_line, never_embedded_summary
from embedding_pipeline.jobs import embed_job
from embedding_pipeline.partitions import PARTITIONS, RESOURCE_TYPES
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.run_state import NEVER_EMBEDDED_TAG, fail_dead_runs


@dg.sensor(job=embed_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def new_content_sensor(context: dg.SensorEvaluationContext, content_source: ContentSource):
    """Polls the content database (never Qdrant) and requests runs for the types that changed.

    The cursor keeps a marker of the whole database and a fingerprint per type: a quiet tick costs
    one single-row query; run keys carry the fingerprint, so each change is requested exactly once.
    """
    fail_dead_runs(context.instance, context.log.warning)  # killed runs show as failed, not running for ever
    database = content_source.database()
    cursor = json.loads(context.cursor) if context.cursor else {}
    marker = database.change_marker()
    if marker == cursor.get("marker"):
        return dg.SkipReason("No content was added, edited, deleted or unpublished since the last tick")
    never = database.unembeddable(RESOURCE_TYPES)
    if never:
        context.log.warning(never_embedded_line(never))
    tags = {NEVER_EMBEDDED_TAG: never_embedded_summary(never)} if never else {}
    fingerprints = database.fingerprints()
    previous = cursor.get("types", {})
    changed = [t for t in PARTITIONS if fingerprints.get(t) != previous.get(t)]
    context.update_cursor(json.dumps({"marker": marker, "types": fingerprints}))
    if not changed:
        return dg.SkipReason("The database changed, but no resource type's content did")
    context.log.info(f"Content changed for {', '.join(changed)}")
    return [dg.RunRequest(partition_key=t, run_key=f"{t}:{fingerprints.get(t, 'empty')}", tags=tags) for t in changed]
