"""The storage server: versioned code snapshots in a git repository, one branch per agent."""
