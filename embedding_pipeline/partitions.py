"""The partitions: the eight resource types, and the topics (mit-learn's `{base}.topics`). Every asset and
the sensor import them from here; the topics are a partition of the same assets, so that a backfill
re-embeds them with the rest and the three aliases move together."""

import dagster as dg

from embedding_pipeline.content.queries import TOPICS_PARTITION as TOPICS

RESOURCE_TYPES = [
    "course",
    "program",
    "learning_path",
    "podcast",
    "podcast_episode",
    "video",
    "video_playlist",
    "document",
]

PARTITIONS = [*RESOURCE_TYPES, TOPICS]

resource_type_partitions = dg.StaticPartitionsDefinition(PARTITIONS)
