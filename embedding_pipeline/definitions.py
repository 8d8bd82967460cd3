"""The whole pipeline in one screen: assets, job and resources."""

import dagster as dg

from embedding_pipeline.assets.chunks import text_chunks
from embedding_pipeline.assets.collections import qdrant_points
from embedding_pipeline.assets.source import source_content
from embedding_pipeline.assets.vectors import dense_vectors, sparse_vectors
from embedding_pipeline.jobs import embed_job
from embedding_pipeline.resources import build_resources
from embedding_pipeline.settings import Settings

defs = dg.Definitions(
    assets=[source_content, text_chunks, dense_vectors, sparse_vectors, qdrant_points],
    jobs=[embed_job],
    resources=build_resources(Settings.from_env()),
    # One process per run: the model loads once and steps hand data over without a process start.
    executor=dg.in_process_executor,
)
