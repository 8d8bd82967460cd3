"""Every setting the pipeline reads from the environment, with its default, in one place.

The names are the ones users already have in their `.env` from the system this replaces.
Assets never read the environment: `definitions.py` builds the resources from `Settings`.
"""

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ENCODER = "embedding_pipeline.resources.encoders.fastembed.FastEmbedEncoder"


def prepare_offline_environment() -> None:
    """Let tiktoken and litellm work without their download hosts (unless the user set otherwise)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        spec = importlib.util.find_spec("litellm")
        if spec and spec.submodule_search_locations:
            bundled = Path(spec.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)


def env_text(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    raw = env_text(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Setting {name} must be a whole number, got {raw!r}") from None


def secret_env(name: str, fallback: str | None = None):
    """An env var Dagster shows by name, never by value (it may hold a password or a key)."""
    import dagster as dg

    return dg.EnvVar(name) if os.environ.get(name, "").strip() else fallback


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    content_database_url: str
    resources_query: str
    content_files_query: str
    changes_query: str
    fingerprint_query: str
    qdrant_host: str
    qdrant_path: Path
    qdrant_base_collection_name: str
    qdrant_keep_old_collections: bool
    qdrant_lock_wait_seconds: int
    qdrant_dense_model: str
    qdrant_dense_model_path: str
    qdrant_sparse_model: str
    qdrant_sparse_model_path: str
    qdrant_encoder: str
    qdrant_chunk_size: int  # records per batch, as in the system this replaces
    qdrant_point_upload_batch_size: int
    chunk_size: int  # tokens per text chunk
    chunk_overlap: int
    token_encoding_name: str
    embedding_batch_size: int
    litellm_api_base: str
    litellm_custom_provider: str
    litellm_batch_max_inputs: int
    litellm_batch_max_tokens: int
    litellm_max_input_tokens: int

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(env_text("EMBEDDING_PIPELINE_DATA_DIR", str(Path.cwd() / "data"))).resolve()
        dense_model = env_text("QDRANT_DENSE_MODEL", DEFAULT_DENSE_MODEL)
        default_model_path = (
            str(data_dir / "models" / dense_model.split("/")[-1]) if dense_model == DEFAULT_DENSE_MODEL else ""
        )
        return cls(
            data_dir=data_dir,
            content_database_url=env_text("CONTENT_DATABASE_URL", f"sqlite:///{data_dir / 'content.db'}"),
            resources_query=env_text("CONTENT_RESOURCES_QUERY", ""),
            content_files_query=env_text("CONTENT_FILES_QUERY", ""),
            changes_query=env_text("CONTENT_CHANGES_QUERY", ""),
            fingerprint_query=env_text("CONTENT_FINGERPRINT_QUERY", ""),
            qdrant_host=env_text("QDRANT_HOST", ""),
            qdrant_path=Path(env_text("QDRANT_PATH", str(data_dir / "qdrant"))),
            qdrant_base_collection_name=env_text("QDRANT_BASE_COLLECTION_NAME", "resource_embeddings"),
            qdrant_keep_old_collections=env_text("QDRANT_KEEP_OLD_COLLECTIONS", "false").lower()
            in ("1", "true", "yes"),
            qdrant_lock_wait_seconds=env_int("QDRANT_LOCK_WAIT_SECONDS", 600),
            qdrant_dense_model=dense_model,
            qdrant_dense_model_path=env_text("QDRANT_DENSE_MODEL_PATH", default_model_path),
            qdrant_sparse_model=env_text("QDRANT_SPARSE_MODEL", "Qdrant/bm25"),
            qdrant_sparse_model_path=env_text("QDRANT_SPARSE_MODEL_PATH", ""),
            qdrant_encoder=env_text("QDRANT_ENCODER", DEFAULT_ENCODER),
            qdrant_chunk_size=env_int("QDRANT_CHUNK_SIZE", 100),
            qdrant_point_upload_batch_size=env_int("QDRANT_POINT_UPLOAD_BATCH_SIZE", 1000),
            chunk_size=env_int("CONTENT_FILE_EMBEDDING_CHUNK_SIZE", 512),
            chunk_overlap=env_int("CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP", env_int("QDRANT_CHUNK_OVERLAP", 51)),
            token_encoding_name=env_text("LITELLM_TOKEN_ENCODING_NAME", "cl100k_base"),
            embedding_batch_size=env_int("EMBEDDING_BATCH_SIZE", 32),
            litellm_api_base=env_text("LITELLM_API_BASE", ""),
            litellm_custom_provider=env_text(
                "LITELLM_CUSTOM_PROVIDER", "ollama" if env_text("LITELLM_API_BASE", "") else ""
            ),
            litellm_batch_max_inputs=env_int("LITELLM_BATCH_MAX_INPUTS", 2048),
            litellm_batch_max_tokens=env_int("LITELLM_BATCH_MAX_TOKENS", 300_000),
            litellm_max_input_tokens=env_int("LITELLM_MAX_INPUT_TOKENS", 8191),
        )
