"""The embed job: every pipeline asset for one resource-type partition."""

import dagster as dg

embed_job = dg.define_asset_job(
    "embed",
    selection=dg.AssetSelection.groups("embeddings"),
    description="Source content → chunks → dense and sparse vectors → Qdrant, for one resource type.",
)
