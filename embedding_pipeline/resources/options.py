"""Per-run switches, set in a run's config in one place for every asset that honours them:

resources: {embed_options: {config: {force_reembed: true}}}

They are the flags of the old `generate_embeddings` command, which `embedding-pipeline embed` keeps.
"""

import dagster as dg
from pydantic import Field

from embedding_pipeline.partition.plan import RunOptions


class EmbedOptions(dg.ConfigurableResource):
    """Every field has a default: a run's config names only the switches it sets."""

    force_reembed: bool = Field(
        default=False,
        description="Embed every text again and upsert every point, ignoring earlier vectors (--overwrite).",
    )
    reembed: bool = Field(
        default=False,
        description="Let models that did not make the collections (files replaced, new weights under the same "
        "name) re-embed into collections of their own, which searches move to once every partition is done "
        "(--reembed); without it such a run is refused. Texts embedded once in the new collections are reused.",
    )
    recreate_collections: bool = Field(
        default=False,
        description="Drop and recreate the collections before upserting this partition, as the old "
        "--recreate-collections did: other partitions' points are gone until they run again. Single runs only.",
    )
    resource_ids: list[int] = Field(
        default=[],
        description="Embed only these learning resources (ids of learning_resources) and their content files "
        "(--resource-ids); nothing is deleted. Empty: every record of the partition.",
    )
    skip_content_files: bool = Field(
        default=False,
        description="Embed the learning resources only; content-file points stay as they are (--skip-contentfiles).",
    )
    allow_mass_deletion: bool = Field(
        default=False,
        description="Let this run delete more than QDRANT_MAX_DELETE_SHARE of the partition's points, or all of "
        "them (the source really lost them); without it such a run fails before deleting anything.",
    )

    def run_options(self, batch_size: int, upload_batch_size: int, max_delete_share: float) -> RunOptions:
        """These switches with the sizes and the deletion limit the settings give."""
        return RunOptions(
            batch_size=batch_size,
            upload_batch_size=upload_batch_size,
            force=self.force_reembed,
            resource_ids=frozenset(self.resource_ids),
            content_files=not self.skip_content_files,
            max_delete_share=None if self.allow_mass_deletion else max_delete_share,
            recreate_collections=self.recreate_collections,
        )
