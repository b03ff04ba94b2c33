"""engine.distributed: the same pipeline on a Dask cluster (extra: ecomscale[distributed]).

Work follows the bucketed layout (engine.schema: users placed by a stable hash of user_id):

* features: one task per bucket (the serial path's unit of work, ``bucket_features``); the
  result of each task stays on its worker, its users ordered by the stable hash;
* segments: workers standardise their partition with statistics the driver merges, then
  K-Means runs through ``DaskRows``, a RowSource whose rows live on the workers: the driver
  draws every random index, fetches only sampled rows (k-means++, mini-batches, the
  silhouette sample) and reduces per-centre sums and counts of full passes. Because bucket b
  holds a contiguous run of the hash order, row i is the same user as in the serial fit,
  whatever the number of buckets or workers.

What differs from the serial path, by design: full-pass sums are added per partition, so
centres and inertia can differ from the serial fit in the last float64 bits (labels and
segments are the same; tested). Insights and the report run on the driver, streaming the
event files, as in the serial path.

Workers read the dataset from a path they can all see (a shared or network file system) and
need ecomscale installed. Tasks are pure functions of file paths and small arrays, so a
task lost with a worker is recomputed elsewhere and the run gives the same result.
"""

from engine.distributed.connect import connect, require_dask
from engine.distributed.features import (
    DistributedFeatures,
    compute_features_distributed,
    features_stage_distributed,
)
from engine.distributed.segments import features_file_partitions, segment_distributed

__all__ = [
    "DistributedFeatures",
    "compute_features_distributed",
    "connect",
    "features_file_partitions",
    "features_stage_distributed",
    "require_dask",
    "segment_distributed",
]
