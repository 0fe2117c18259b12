"""The two-view dataset on disk: sharded tar files, written atomically, read lazily (see FORMAT.md here)."""

from .format import (
    ARRAY_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    OPTIONAL_ARRAYS,
    ROBOT_FIELDS,
    DatasetError,
    ShardWriter,
    TwoViewDataset,
    iter_tar_samples,
    open_dataset,
    shard_done,
    write_json_atomic,
)

__all__ = [
    "ARRAY_SCHEMA",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "OPTIONAL_ARRAYS",
    "ROBOT_FIELDS",
    "DatasetError",
    "ShardWriter",
    "TwoViewDataset",
    "iter_tar_samples",
    "open_dataset",
    "shard_done",
    "write_json_atomic",
]
