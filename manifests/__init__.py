"""Data, not code: the servers' manifests (servers/NAME/) and the run manifests (runs/), shipped in the wheel."""
