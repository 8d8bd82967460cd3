"""The whole pipeline in one screen: assets and their checks, job, sensor and resources."""

import dagster as dg

from embedding_pipeline.assets.embed import embed_partition
from embedding_pipeline.jobs import embed_job
from embedding_pipeline.resources import build_resources
from embedding_pipeline.sensors import content_sensor, dead_runs_sensor
from embedding_pipeline.settings import Settings

settings = Settings.from_env()


def _with_settings(spec: dg.AssetSpec) -> dg.AssetSpec:
    """A changed model or chunking setting shows in the UI as a changed code version (stale assets)."""
    values = settings.values_of(spec.key.to_user_string())
    if not values:
        return spec
    return spec.replace_attributes(code_version="|".join(str(v) for v in (spec.code_version, *values)))


defs = dg.Definitions(
    assets=[embed_partition.map_asset_specs(_with_settings)],
    jobs=[embed_job],
    sensors=[content_sensor(settings.sensor_interval_seconds), dead_runs_sensor(settings.sensor_interval_seconds)],
    resources=build_resources(settings),
    # One process per run: the model loads once and steps hand data over without a process start.
    executor=dg.in_process_executor,
)
