"""The lab console: web pages to watch, steer and audit a run (see app.py)."""
