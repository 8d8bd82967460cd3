"""Stores each asset partition's DataFrame as a Parquet file under Dagster's storage directory."""

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath


def write_parquet(frame: pd.DataFrame, path) -> None:
    """Write through a temporary file, so a killed step never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".partial")
    frame.to_parquet(staging, index=False)
    staging.replace(path)


class PartitionedParquetIOManager(dg.UPathIOManager):
    """`<base_dir>/<asset>/<partition>.parquet`: one file per partition, columnar, not pickled."""

    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_parquet(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return pd.read_parquet(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    base_dir: str | None = Field(default=None, description="Defaults to the instance's storage directory.")

    def create_io_manager(self, context: dg.InitResourceContext) -> PartitionedParquetIOManager:
        base_dir = self.base_dir or context.instance.storage_directory()
        return PartitionedParquetIOManager(base_path=UPath(base_dir))
