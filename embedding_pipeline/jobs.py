"""The embed job: every pipeline asset for one resource-type partition."""

import dagster as dg

embed_job = dg.define_asset_job(
    "embed",
    selection=dg.AssetSelection.groups("embeddings"),
    description="Source content → chunks → dense and sparse vectors → Qdrant, for one resource type. "
    "Run config `resources: {embed_options: {config: {force_reembed: true}}}` re-embeds everything; "
    "`recreate_collections: true` there drops and recreates the collections first.",
)
