"""The AAR Lab client: the `aar` command, and `aar run`, which runs a team of researchers against the servers."""
