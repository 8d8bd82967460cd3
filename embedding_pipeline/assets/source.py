"""source_content: what the content database holds for one resource type."""

import time

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.content_source import ContentSource


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"sql", "pandas"},
)
def source_content(context: dg.AssetExecutionContext, content_source: ContentSource) -> dg.Output[pd.DataFrame]:
    """The partition's published learning resources and their published content files.

    One row per record, `record_type` telling which; the columns are those of the source
    schema. Whatever is missing here (deleted or unpublished) is removed from Qdrant downstream.
    """
    started = time.perf_counter()
    resources, files = content_source.fetch(context.partition_key)
    seconds = time.perf_counter() - started
    frame = pd.concat(
        [resources.assign(record_type="resource"), files.assign(record_type="content_file")],
        ignore_index=True,
    )
    frame["resource_id"] = frame["resource_id"].astype("Int64")
    context.log.info(f"{context.partition_key}: {len(resources)} resources, {len(files)} content files")
    return dg.Output(
        frame,
        metadata={
            "resources": dg.MetadataValue.int(len(resources)),
            "content_files": dg.MetadataValue.int(len(files)),
            "fetch_seconds": dg.MetadataValue.float(round(seconds, 3)),
        },
    )
