"""The scripted researcher: a simple but real researcher served as a local fake Messages API."""
