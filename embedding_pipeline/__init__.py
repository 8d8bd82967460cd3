"""Learning content → chunks → dense and sparse vectors → Qdrant, as Dagster assets."""

from embedding_pipeline.settings import prepare_offline_environment

prepare_offline_environment()
