"""The whole pipeline in one screen: assets, job, sensor and resources."""

import dagster as dg

from embedding_pipeline.assets.checks import dense_dimension_matches_encoder, points_match_source
from embedding_pipeline.assets.chunks import text_chunks
from embedding_pipeline.assets.collections import qdrant_points
from embedding_pipeline.assets.source import source_content
from embedding_pipeline.assets.vectors import dense_vectors, sparse_vectors
from embedding_pipeline.jobs import embed_job
from embedding_pipeline.resources import build_resources
from embedding_pipeline.sensors import new_content_sensor
from embedding_pipeline.settings import Settings


def with_settings_in_code_version(asset: dg.AssetsDefinition, *settings) -> dg.AssetsDefinition:
    """A changed model or chunking setting shows in the UI as a changed code version (stale assets)."""
    suffix = "|".join(str(s) for s in settings)
    return asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version=f"{spec.code_version}|{suffix}"))


settings = Settings.from_env()
defs = dg.Definitions(
    assets=[
        source_content,
        with_settings_in_code_version(
            text_chunks, settings.token_encoding_name, settings.qdrant_chunk_size, settings.qdrant_chunk_overlap
        ),
        with_settings_in_code_version(dense_vectors, settings.qdrant_dense_model),
        with_settings_in_code_version(sparse_vectors, settings.qdrant_sparse_model),
        qdrant_points,
    ],
    asset_checks=[points_match_source, dense_dimension_matches_encoder],
    jobs=[embed_job],
    sensors=[new_content_sensor],
    resources=build_resources(settings),
    # One process per run: the model loads once and steps hand data over without a process start.
    executor=dg.in_process_executor,
)
