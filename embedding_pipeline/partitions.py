"""The resource-type partitions: every asset and the sensor import them from here."""

import dagster as dg

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

resource_type_partitions = dg.StaticPartitionsDefinition(RESOURCE_TYPES)
