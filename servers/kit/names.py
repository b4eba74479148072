"""Agent names, the one rule every server, token and workspace shares."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""1-32 of a-z, 0-9, '_' and '-', starting with a letter or digit: safe as a git branch, a path and a token label."""

AgentName = Annotated[
    str, Field(pattern=AGENT_NAME.pattern, description="An agent's name: 1-32 of a-z, 0-9, '_' and '-'.")
]
