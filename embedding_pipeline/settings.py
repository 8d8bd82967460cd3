"""Every setting the pipeline reads, declared once: its default, type, variable name(s) and meaning.

The first name of a setting is the variable of the system this replaces, so its `.env` works as
is; further names are aliases (this project's earlier names). `Settings.from_env()` reads the
environment and stops with an error naming the variable and its value before any run when a value
cannot work; it changes nothing. A `.env` file is loaded into the environment by the entry points
(`load_env_file`, as Dagster's own commands do), never on import. Assets never read the environment:
`embedding_pipeline.resources.build_resources` turns the settings into resources. docs/settings.md's
table is `settings_table()` (a test keeps them equal).
"""

import os
import re
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import dotenv
from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from embedding_pipeline.digests import digest
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.vector_store import ServerCollections

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ENCODER = "embedding_pipeline.resources.encoders.fastembed.FastEmbedEncoder"
DEFAULT_SPARSE_ENCODER = "embedding_pipeline.resources.encoders.fastembed.SparseEncoder"
CLOUD_ENCODER = "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder"  # mit-learn's: Qdrant embeds the text
# The settings that determine the vectors, by the asset whose code version they are part of. The
# same list, in this order, is hashed into the version that names the physical collections.
VECTOR_SETTINGS = {
    "dense_vectors": ("qdrant_dense_model",),
    "sparse_vectors": ("qdrant_sparse_encoder", "qdrant_sparse_model"),
    "text_chunks": ("token_encoding_name", "chunk_size", "chunk_overlap"),
}


_SERVER = ServerCollections()  # mit-learn's collections: the defaults of the settings that make them on a server

# The settings mit-learn's readers also read to make their query vectors: they must agree with ours.
QUERY_SETTINGS = ("qdrant_encoder", "qdrant_dense_model", "qdrant_sparse_encoder", "qdrant_sparse_model")


class SettingError(PermanentError, ValueError):
    """A setting whose value cannot work, named with its value; raised at start."""


# A URL's password (`scheme://user:password@host`) and a query parameter that holds a key or a token.
_URL_PASSWORD = re.compile(r"(\b[a-z][\w+.-]*://[^\s:/@]*:)[^\s@]+(@)", re.IGNORECASE)
_URL_KEY = re.compile(r"([?&][^\s=&]*(?:key|token|secret|password)[^\s=&]*=)[^\s&]+", re.IGNORECASE)


def masked(text: str) -> str:
    """`text` with any password of a URL in it, and any key or token in a URL's query, shown as `***`."""
    return _URL_KEY.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\2", text))


def load_env_file(path: str | Path = ".env") -> None:
    """Put a `.env` file's variables into the environment, where the environment does not set them: once,
    as a command starts (Dagster's commands do the same with the `.env` of their working folder)."""
    if Path(path).is_file():
        dotenv.load_dotenv(path, override=False)


def setting(default, *names: str, meaning: str, shown: str | None = None, mit_learn: str | None = None, **constraints):
    """A setting read from the variable `names[0]`, or from one of its aliases `names[1:]`.

    `shown` is the default as the settings table says it, where the value itself would mislead;
    `mit_learn` is mit-learn's default where it differs from ours (its readers read the same variable).
    """
    return Field(
        default,
        validation_alias=AliasChoices(*names),
        description=meaning,
        json_schema_extra={"names": list(names), "shown": shown, "mit_learn": mit_learn},
        **constraints,
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, str_strip_whitespace=True, extra="ignore")

    data_dir: Path | None = setting(
        None, "EMBEDDING_PIPELINE_DATA_DIR", shown="`./data`",
        meaning="content database, embedded Qdrant and models live here",
    )  # fmt: skip
    content_database_url: str | None = setting(
        None, "CONTENT_DATABASE_URL", shown="`sqlite:///<data dir>/content.db`",
        meaning="SQLAlchemy URL of the content database (passed to Dagster by name: it may hold a password)",
    )  # fmt: skip
    resources_query: str = setting(
        "", "CONTENT_RESOURCES_QUERY", shown="built-in query on mit-learn's tables",
        meaning="your SQL returning the resources of `:resource_type` with the columns "
        "[Pointing it at your own tables](../README.md#pointing-it-at-your-own-tables) lists",
    )  # fmt: skip
    content_files_query: str = setting(
        "", "CONTENT_FILES_QUERY", shown="built-in query on mit-learn's tables",
        meaning="your SQL returning the content files to embed of the resources of `:resource_type`",
    )  # fmt: skip
    changes_query: str = setting(
        "", "CONTENT_CHANGES_QUERY", shown="counts, id sums and summed `updated_on` of mit-learn's tables",
        meaning="your SQL returning one row that changes whenever content changes (the sensor's cheap check)",
    )  # fmt: skip
    fingerprint_query: str = setting(
        "", "CONTENT_FINGERPRINT_QUERY", shown="the same per resource type and table",
        meaning="your SQL returning rows whose first column is a resource type and that change when the type's "
        "content does",
    )  # fmt: skip
    blocklisted_courses_url: str = setting(
        "", "BLOCKLISTED_COURSES_URL", shown="empty: no blocklist",
        mit_learn="https://raw.githubusercontent.com/mitodl/open-resource-blocklists/master/courses.txt",
        meaning="mit-learn's course blocklist (a URL, `file://` or a path; a readable id a line): those courses and "
        "their content files are not embedded, and their points are removed; read at each course run and by the sensor",
    )  # fmt: skip
    app_base_url: str = setting(
        "", "MITOL_APP_BASE_URL", shown="empty: channel URLs start at `/c/`",
        meaning="mit-learn's front end, e.g. `https://learn.mit.edu`: the documents' channel URLs "
        "(`channel_url` of topics, offerors, departments) start with it, as mit-learn's do",
    )  # fmt: skip
    sensor_interval_seconds: int = setting(
        30, "EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS", ge=5,
        meaning="how often the sensor runs its cheap check of the content database (the daemon looks every 5 s)",
    )  # fmt: skip
    qdrant_host: str = setting(
        "", "QDRANT_HOST", shown="empty: embedded Qdrant", meaning="Qdrant server URL, e.g. `http://qdrant:6333`"
    )
    qdrant_port: int | None = setting(
        None, "QDRANT_PORT", shown="the port in `QDRANT_HOST`, else 6333", gt=0,
        meaning="port of the Qdrant server, for a `QDRANT_HOST` that gives none",
    )  # fmt: skip
    qdrant_api_key: SecretStr | None = setting(None, "QDRANT_API_KEY", meaning="API key of the Qdrant server")
    qdrant_path: Path | None = setting(
        None, "QDRANT_PATH", shown="`<data dir>/qdrant`",
        meaning="folder of the embedded Qdrant engine (when `QDRANT_HOST` is empty)",
    )  # fmt: skip
    qdrant_client_timeout: int = setting(
        10, "QDRANT_CLIENT_TIMEOUT", gt=0, meaning="seconds before a request to a Qdrant server gives up"
    )
    qdrant_lock_wait_seconds: float = setting(
        600, "QDRANT_LOCK_WAIT_SECONDS", ge=0,
        meaning="how long a run waits for an embedded store another process holds",
    )  # fmt: skip
    qdrant_base_collection_name: str = setting(
        "resource_embeddings", "QDRANT_COLLECTION_NAME", "QDRANT_BASE_COLLECTION_NAME", min_length=1,
        meaning="collection prefix: searches use `{base}.resources` and `{base}.content_files`",
    )  # fmt: skip
    qdrant_max_delete_share: float = setting(
        0.5, "QDRANT_MAX_DELETE_SHARE", ge=0, le=1,
        meaning="largest share of a partition's points one run may delete; a run that would delete more, or "
        "all of them, fails before deleting anything unless its config says `allow_mass_deletion: true`",
    )  # fmt: skip
    qdrant_keep_old_collections: bool = setting(
        False, "QDRANT_KEEP_OLD_COLLECTIONS",
        meaning="keep the old physical collections after a re-embed moves the aliases",
    )  # fmt: skip
    # How collections are made on a Qdrant server (`QDRANT_HOST`), as mit-learn's create_qdrant_collection and
    # tune_qdrant_collections make them; the embedded engine, one machine's, keeps its own (docs/embedded-qdrant.md).
    qdrant_shard_number: int = setting(
        _SERVER.shard_number, "QDRANT_SHARD_NUMBER", gt=0, meaning="shards of each collection made on a server"
    )
    qdrant_replication_factor: int = setting(
        _SERVER.replication_factor, "QDRANT_REPLICATION_FACTOR", gt=0,
        meaning="copies of each shard on a server cluster",
    )  # fmt: skip
    qdrant_strict_mode: bool = setting(
        _SERVER.strict_mode, "QDRANT_STRICT_MODE",
        meaning="a server refuses filters on fields without a payload index (strict mode)",
    )  # fmt: skip
    qdrant_default_segment_number: int = setting(
        _SERVER.default_segment_number, "QDRANT_DEFAULT_SEGMENT_NUMBER", gt=0,
        meaning="segments per shard the server's optimizer aims at",
    )  # fmt: skip
    qdrant_prevent_unoptimized: bool = setting(
        _SERVER.prevent_unoptimized, "QDRANT_PREVENT_UNOPTIMIZED",
        meaning="the server keeps writes from piling up in unindexed segments (`prevent_unoptimized`)",
    )  # fmt: skip
    qdrant_binary_quantization: bool = setting(
        _SERVER.binary_quantization, "QDRANT_BINARY_QUANTIZATION",
        meaning="dense vectors binary-quantized in RAM on a server (rescored from the originals)",
    )  # fmt: skip
    qdrant_hnsw_on_disk: bool = setting(
        _SERVER.hnsw_on_disk, "QDRANT_HNSW_ON_DISK", meaning="a server's HNSW graph on disk"
    )
    qdrant_on_disk_payload: bool = setting(
        _SERVER.on_disk_payload, "QDRANT_ON_DISK_PAYLOAD", meaning="a server keeps payloads on disk"
    )
    qdrant_sparse_index_on_disk: bool = setting(
        _SERVER.sparse_index_on_disk, "QDRANT_SPARSE_INDEX_ON_DISK", meaning="a server keeps the sparse index on disk"
    )
    qdrant_tune_optimizer: bool = setting(
        _SERVER.tune_optimizer, "QDRANT_TUNE_OPTIMIZER",
        meaning="after a run writes, set a server collection's indexing threshold and flush interval by its points "
        "per shard (mit-learn's daily `tune_qdrant_collections`)",
    )  # fmt: skip
    qdrant_encoder: str = setting(
        DEFAULT_ENCODER, "QDRANT_ENCODER", mit_learn="vector_search.encoders.gensim.GensimEncoder",
        meaning="dotted class path of the dense encoder; `embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder` "
        "for OpenAI, Ollama and other LiteLLM providers (mit-learn's `vector_search.encoders...` names work too)",
    )  # fmt: skip
    qdrant_dense_model: str = setting(
        DEFAULT_DENSE_MODEL, "QDRANT_DENSE_MODEL", mit_learn="empty: the encoder's own (Gensim's `glove/glove-wiki-gigaword-50`)",
        meaning="dense model name; its part after the first `/` names the vector",
    )  # fmt: skip
    qdrant_dense_model_path: str | None = setting(
        None, "QDRANT_DENSE_MODEL_PATH", shown="`<data dir>/models/all-MiniLM-L6-v2` for the default model, else empty",
        meaning="local ONNX model directory (`model.onnx`, `tokenizer.json`, `tokenizer_config.json`, "
        "`special_tokens_map.json`, `config.json`); empty: fastembed downloads the model by name",
    )  # fmt: skip
    qdrant_sparse_encoder: str = setting(
        DEFAULT_SPARSE_ENCODER, "QDRANT_SPARSE_ENCODER_V2", "QDRANT_SPARSE_ENCODER",
        mit_learn="vector_search.encoders.sparse_hash.SparseHashEncoder",
        meaning="dotted class path of the sparse encoder: fastembed's BM25 (also for mit-learn's "
        "`vector_search.encoders.qdrant_cloud.QdrantCloudEncoder` with `qdrant/bm25`), or "
        "`embedding_pipeline.resources.encoders.sparse_hash.SparseHashEncoder` (mit-learn's hashing vectorizer)",
    )  # fmt: skip
    qdrant_sparse_model: str | None = setting(
        None, "QDRANT_SPARSE_MODEL_V2", "QDRANT_SPARSE_MODEL",
        shown="`Qdrant/bm25`; `sklearn/hashing_vectorizer_sparse_model` with the hash encoder",
        mit_learn="sklearn/hashing_vectorizer_sparse_model",
        meaning="sparse model; its part after the first `/` names the vector",
    )  # fmt: skip
    qdrant_sparse_model_path: str = setting(
        "", "QDRANT_SPARSE_MODEL_PATH", shown="bundled BM25 stopwords", meaning="local sparse model directory"
    )
    qdrant_chunk_size: int = setting(
        100, "QDRANT_CHUNK_SIZE", gt=0, mit_learn="10",
        meaning="records per batch (the old system's meaning: records per embedding task): the unit of progress "
        "a failed run resumes after ([why 100](design.md#qdrant-is-the-state))",
    )  # fmt: skip
    qdrant_point_upload_batch_size: int = setting(
        1000, "QDRANT_POINT_UPLOAD_BATCH_SIZE", gt=0, meaning="points per upsert request"
    )
    chunk_size: int = setting(
        512, "CONTENT_FILE_EMBEDDING_CHUNK_SIZE", gt=0,
        meaning="most characters in a chunk of a content file (tokens when `LITELLM_TOKEN_ENCODING_NAME` is set)",
    )  # fmt: skip
    chunk_overlap: int = setting(
        0, "CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP", ge=0,
        meaning="characters (or tokens) shared by neighbouring chunks; smaller than the chunk size",
    )  # fmt: skip
    token_encoding_name: str | None = setting(
        None, "LITELLM_TOKEN_ENCODING_NAME", shown="empty: chunks are cut by characters",
        meaning="tiktoken encoding that measures chunks in tokens, as mit-learn does when it is set (offline: "
        "litellm's bundled `cl100k_base`, `o200k_base`, `p50k_base`); LiteLLM batches count `cl100k_base` tokens "
        "when it is empty",
    )  # fmt: skip
    # Measured on the benchmark's 1× texts, sorted by length (2 cores): batches of 4, 8 and 12 took about
    # 52 s, 32 took 56-58 s, and ONNX Runtime's peak grew with the batch (8: 0.5 GB, 32: 1.2 GB). README: Benchmark.
    embedding_batch_size: int = setting(
        8,
        "EMBEDDING_BATCH_SIZE",
        gt=0,
        meaning="texts per dense encoder call (fastembed; larger batches were no faster here and need more memory)",
    )
    openai_api_key: SecretStr | None = setting(
        None, "OPENAI_API_KEY", meaning="key for OpenAI through LiteLLM (passed to Dagster by name, never shown)"
    )
    litellm_api_base: str = setting(
        "", "LITELLM_API_BASE",
        meaning="server of a self-hosted model (Ollama, or any OpenAI-compatible server)",
    )  # fmt: skip
    litellm_custom_provider: str | None = setting(
        None, "LITELLM_CUSTOM_PROVIDER", shown="`ollama` when `LITELLM_API_BASE` is set, else empty",
        meaning="LiteLLM provider for that server",
    )  # fmt: skip
    litellm_batch_max_inputs: int = setting(
        2048, "LITELLM_BATCH_MAX_INPUTS", gt=0, meaning="most inputs per embedding request"
    )
    litellm_batch_max_tokens: int = setting(
        300_000, "LITELLM_BATCH_MAX_TOKENS", gt=0, meaning="most tokens per embedding request"
    )
    litellm_max_input_tokens: int = setting(
        8191, "LITELLM_MAX_INPUT_TOKENS", gt=0, meaning="longer texts are cut to this many tokens"
    )
    litellm_max_concurrent_requests: int = setting(
        8, "LITELLM_MAX_CONCURRENT_REQUESTS", gt=0,
        meaning="embedding requests a process keeps in flight (one per batch of `QDRANT_CHUNK_SIZE` records, from "
        "every partition it embeds), paced by the provider's rate-limit headers; 1 sends one at a time, and `embed` "
        "then runs one partition after another",
    )  # fmt: skip
    dagster_postgres_url: SecretStr | None = setting(
        None, "DAGSTER_POSTGRES_URL", shown="empty: SQLite in `DAGSTER_HOME`",
        meaning="PostgreSQL for Dagster's runs, event logs, schedules and sensor state, e.g. "
        "`postgresql://dagster:...@db:5432/dagster`",
    )  # fmt: skip
    dagster_postgres_host: str = setting(
        "", "DAGSTER_POSTGRES_HOST",
        meaning="the same in parts (Dagster's usual names): the host selects PostgreSQL; `DAGSTER_POSTGRES_USER` "
        "and `DAGSTER_POSTGRES_DB` are then required",
    )  # fmt: skip
    dagster_postgres_port: int = setting(5432, "DAGSTER_POSTGRES_PORT", gt=0, meaning="its port")
    dagster_postgres_user: str = setting("", "DAGSTER_POSTGRES_USER", meaning="its user")
    dagster_postgres_password: SecretStr | None = setting(None, "DAGSTER_POSTGRES_PASSWORD", meaning="its password")
    dagster_postgres_db: str = setting("", "DAGSTER_POSTGRES_DB", meaning="its database")

    @model_validator(mode="after")
    def _derive_and_check(self) -> "Settings":
        """Defaults that follow from other settings, and the checks that span two settings."""
        self.data_dir = (self.data_dir or Path.cwd() / "data").resolve()
        self.content_database_url = self.content_database_url or f"sqlite:///{self.data_dir / 'content.db'}"
        self.qdrant_path = self.qdrant_path or self.data_dir / "qdrant"
        if self.qdrant_dense_model_path is None:
            default_model = self.qdrant_dense_model == DEFAULT_DENSE_MODEL
            self.qdrant_dense_model_path = (
                str(self.data_dir / "models" / DEFAULT_DENSE_MODEL.split("/")[-1]) if default_model else ""
            )
        self.qdrant_host = with_port(self.qdrant_host, self.qdrant_port)
        if self.litellm_custom_provider is None:
            self.litellm_custom_provider = "ollama" if self.litellm_api_base else ""
        if self.qdrant_encoder == CLOUD_ENCODER and "qdrant_dense_model" not in self.model_fields_set:
            raise ValueError(
                f"QDRANT_ENCODER={CLOUD_ENCODER} needs QDRANT_DENSE_MODEL: the OpenAI model Qdrant's inference "
                "calls for mit-learn (e.g. openai/text-embedding-3-large), which LiteLLM calls here"
            )
        missing = [name for name in ("dagster_postgres_user", "dagster_postgres_db") if not getattr(self, name)]
        if self.dagster_postgres_url is None and self.dagster_postgres_host and missing:
            raise ValueError(
                "DAGSTER_POSTGRES_HOST is set, so Dagster's storage is PostgreSQL, but these are not: "
                f"{', '.join(_names(name)[0] for name in missing)} (or set DAGSTER_POSTGRES_URL instead)"
            )
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP={self.chunk_overlap} must be smaller than "
                f"CONTENT_FILE_EMBEDDING_CHUNK_SIZE={self.chunk_size}"
            )
        return self

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings of the environment (values are read with surrounding spaces stripped)."""
        _aliases_agree()
        try:
            return cls()
        except ValidationError as error:
            raise SettingError(_explain(error)) from None

    def server_collections(self) -> dict:
        """How collections are made on a Qdrant server: `ServerCollections`' fields, each set by `QDRANT_<FIELD>`."""
        return {item.name: getattr(self, f"qdrant_{item.name}") for item in fields(ServerCollections)}

    def values_of(self, asset: str) -> tuple:
        """The settings that shape `asset`'s data: part of its code version in the UI."""
        return tuple(getattr(self, name) for name in VECTOR_SETTINGS.get(asset, ()))

    def vectors_version(self) -> str:
        """Short hash of everything that determines the vectors; it names the physical collections."""
        from embedding_pipeline.partition.points import POINTS_LAYOUT  # how ids and payloads are laid out

        values = [value for asset in VECTOR_SETTINGS for value in self.values_of(asset)]
        return digest(*values, POINTS_LAYOUT, length=8)


def with_port(host: str, port: int | None) -> str:
    """QDRANT_HOST with QDRANT_PORT put in, where the URL has no port of its own."""
    if port is None:
        return host
    parts = urlsplit(host)
    if not host or not parts.scheme or not parts.hostname:
        raise ValueError(
            f"QDRANT_PORT={port} needs QDRANT_HOST, a server's URL with its scheme (e.g. http://qdrant), "
            "which it gives a port; the embedded store has no port"
        )
    if parts.port is not None and parts.port != port:
        raise ValueError(f"QDRANT_PORT={port} and the port of QDRANT_HOST={masked(host)} differ: set one of them")
    return parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0] if parts.port else parts.netloc}:{port}").geturl()


def _names(field: str) -> list[str]:
    return Settings.model_fields[field].json_schema_extra["names"]


def _set(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _aliases_agree() -> None:
    for field in Settings.model_fields:
        given = {name: _set(name) for name in _names(field) if _set(name) is not None}
        if len(set(given.values())) > 1:
            raise SettingError(
                " and ".join(f"{name}={value!r}" for name, value in given.items())
                + " name the same setting with different values: set one of them"
            )


def _explain(error: ValidationError) -> str:
    """Each problem with the variable that was set and its value (secrets not shown)."""
    lines = []
    for problem in error.errors():
        where = {str(part).upper() for part in problem["loc"]}
        field = next((f for f in Settings.model_fields if where & {n.upper() for n in _names(f)}), None)
        reason = problem["msg"].removeprefix("Value error, ")
        if field is None:  # a check across settings: its message names them
            lines.append(reason)
            continue
        name = next((n for n in _names(field) if _set(n) is not None), _names(field)[0])
        secret = Settings.model_fields[field].annotation == SecretStr | None
        shown = "<hidden>" if secret else masked(repr(_set(name)))
        lines.append(f"{name}={shown}: {reason}")
    return "Invalid settings:\n  " + "\n  ".join(lines)


def settings_table() -> str:
    """docs/settings.md's table, from the declarations above."""
    rows = ["| variable | default | mit-learn's default, where it differs | meaning |", "|---|---|---|---|"]
    for field in Settings.model_fields.values():
        names = field.json_schema_extra["names"]
        shown = field.json_schema_extra["shown"]
        default = shown if shown is not None else _shown_default(field.default)
        theirs = field.json_schema_extra["mit_learn"]
        variable = f"`{names[0]}`" + (f" (or {', '.join(f'`{n}`' for n in names[1:])})" if names[1:] else "")
        rows.append(f"| {variable} | {default} | {f'`{theirs}`' if theirs else ''} | {field.description} |")
    return "\n".join(rows)


# The encoders of a mit-learn left at its defaults (its GensimEncoder then uses its own model, GloVe).
MIT_LEARN_ENCODERS = {
    "qdrant_encoder": "vector_search.encoders.gensim.GensimEncoder",
    "qdrant_sparse_encoder": "vector_search.encoders.sparse_hash.SparseHashEncoder",
}


def left_unset(field: str) -> bool:
    """No variable of the setting `field` is set (its default is in use)."""
    return not any(_set(name) for name in _names(field))


def variable(field: str) -> str:
    """The variable that sets `field`: the old system's name."""
    return _names(field)[0]


def _shown_default(value) -> str:
    if value in (None, ""):
        return "empty"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"
