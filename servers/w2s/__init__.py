"""The weak-to-strong (W2S) testbed: tasks, weak and strong models, baselines and PGR scoring.

Method side (no task data, no labels; what a sandbox sees): ``api`` (the method API), ``losses``,
``heads``, ``encoders``, ``methods`` (baselines), ``scoring``, ``bundle`` (method inputs as files)
and ``runner`` (``python -m servers.w2s.runner``). Label side: ``tasks``, ``splits``, ``weak``,
``cache``, ``testbed`` (per-seed data, cached), ``evaluate`` and ``table``.
``python -m servers.w2s --help`` prints the baseline table.
"""
