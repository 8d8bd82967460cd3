"""The pipeline's resources, built from the settings: the one place that turns settings into clients."""

import os

import dagster as dg

from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.resources.encoders import dense_encoder_class, sparse_encoder_class
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.settings import Settings, masked


def secret_env(name: str, fallback: str | None = None):
    """An env var Dagster shows by name, never by value (it may hold a password or a key)."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else fallback


def build_resources(settings: Settings) -> dict:
    dense_class = dense_encoder_class(settings.qdrant_encoder)
    return {
        "content_source": ContentSource(
            database_url=secret_env("CONTENT_DATABASE_URL", settings.content_database_url),
            batch_size=settings.qdrant_chunk_size,
            resources_query=settings.resources_query,
            content_files_query=settings.content_files_query,
            changes_query=settings.changes_query,
            fingerprint_query=settings.fingerprint_query,
        ),
        "chunker": TextChunker(
            encoding_name=settings.token_encoding_name,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            limit_model=settings.qdrant_dense_model if dense_class.token_limited else None,
        ),
        "dense_encoder": dense_class.from_settings(settings),
        "sparse_encoder": sparse_encoder_class(settings.qdrant_sparse_encoder).from_settings(settings),
        "embed_options": EmbedOptions(),
        "qdrant": QdrantResource(
            host=settings.qdrant_host
            if masked(settings.qdrant_host) == settings.qdrant_host
            else dg.EnvVar("QDRANT_HOST"),
            port=settings.qdrant_port,
            api_key=secret_env("QDRANT_API_KEY"),
            path=str(settings.qdrant_path),
            base_collection_name=settings.qdrant_base_collection_name,
            vectors_version=settings.vectors_version(),
            keep_old_collections=settings.qdrant_keep_old_collections,
            lock_wait_seconds=settings.qdrant_lock_wait_seconds,
            timeout=settings.qdrant_client_timeout,
            max_delete_share=settings.qdrant_max_delete_share,
            upload_batch_size=settings.qdrant_point_upload_batch_size,
        ),
    }
