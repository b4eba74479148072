"""The AAR Lab client: the `aar` command (and, later, the orchestrator of a research team)."""
