"""Running the lab's compute on a Ray cluster (AAR_EXECUTOR=ray): see docs/cluster.md."""
