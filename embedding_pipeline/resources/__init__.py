"""The pipeline's resources, built from the settings: the one place that turns settings into clients."""

from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import (
    DEFAULT_CHANGES_QUERY,
    DEFAULT_CONTENT_FILES_QUERY,
    DEFAULT_FINGERPRINT_QUERY,
    DEFAULT_RESOURCES_QUERY,
    ContentSource,
)
from embedding_pipeline.resources.encoders import dense_encoder_class, sparse_encoder_class
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.settings import Settings, secret_env


def build_resources(settings: Settings) -> dict:
    return {
        "content_source": ContentSource(
            database_url=secret_env("CONTENT_DATABASE_URL", settings.content_database_url),
            batch_size=settings.qdrant_chunk_size,
            resources_query=settings.resources_query or DEFAULT_RESOURCES_QUERY,
            content_files_query=settings.content_files_query or DEFAULT_CONTENT_FILES_QUERY,
            changes_query=settings.changes_query or DEFAULT_CHANGES_QUERY,
            fingerprint_query=settings.fingerprint_query or DEFAULT_FINGERPRINT_QUERY,
        ),
        "chunker": TextChunker(
            encoding_name=settings.token_encoding_name,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
        ),
        "dense_encoder": dense_encoder_class(settings.qdrant_encoder).from_settings(settings),
        "sparse_encoder": sparse_encoder_class(settings.qdrant_sparse_encoder).from_settings(settings),
        "embed_options": EmbedOptions(),
        "qdrant": QdrantResource(
            host=settings.qdrant_host,
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
