"""The pipeline's resources, built from the settings: the one place that turns settings into clients."""

import os

import dagster as dg

from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.resources.encoders import dense_encoder_class, sparse_encoder_class
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.settings import MIT_LEARN_ENCODERS, QUERY_SETTINGS, Settings, left_unset, masked, variable


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
            app_base_url=settings.app_base_url,
            blocklisted_courses_url=secret_env("BLOCKLISTED_COURSES_URL", settings.blocklisted_courses_url),
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
            server_collections=settings.server_collections(),
        ),
    }


def in_use(settings: Settings) -> dict[str, str]:
    """The encoders the settings choose (as this project's classes: mit-learn's names map to them) and the models
    they use: an encoder's own model where the setting is left unset (GensimEncoder's GloVe)."""
    dense, sparse = dense_encoder_class(settings.qdrant_encoder), sparse_encoder_class(settings.qdrant_sparse_encoder)
    return {
        "qdrant_encoder": f"{dense.__module__}.{dense.__qualname__}",
        "qdrant_dense_model": dense.from_settings(settings).model_name,
        "qdrant_sparse_encoder": f"{sparse.__module__}.{sparse.__qualname__}",
        "qdrant_sparse_model": sparse.from_settings(settings).model_name,
    }


def reader_defaults(settings: Settings) -> list[str]:
    """Settings left unset whose value in use differs from what a mit-learn left at its defaults uses: its readers
    make their query vectors with their own settings, which must be ours."""
    ours = in_use(settings)
    unset = [name for name in QUERY_SETTINGS if left_unset(name)]
    defaults = {name: MIT_LEARN_ENCODERS[name] for name in MIT_LEARN_ENCODERS if name in unset}
    theirs = in_use(settings.model_copy(update=defaults))
    return [
        f"{variable(name)} is not set: this project uses {ours[name]}, a mit-learn left at its own default uses "
        f"{theirs[name]}; set {variable(name)} in both environments"
        for name in unset
        if ours[name] != theirs[name]
    ]
