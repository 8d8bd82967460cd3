"""Per-run switches, set in a run's config in one place for every asset that honours them:

resources: {embed_options: {config: {force_reembed: true}}}
"""

import dagster as dg
from pydantic import Field


class EmbedOptions(dg.ConfigurableResource):
    batch_size: int = Field(
        default=100,
        description="Records read, chunked, embedded and written together (QDRANT_CHUNK_SIZE): the unit of "
        "progress a failed run resumes after, and of the memory a run needs.",
    )
    force_reembed: bool = Field(
        default=False, description="Embed every text again and upsert every point, ignoring earlier vectors."
    )
    recreate_collections: bool = Field(
        default=False,
        description="Drop and recreate the collections before upserting this partition, as the old "
        "--recreate-collections did: other partitions' points are gone until they run again. Single runs only.",
    )
