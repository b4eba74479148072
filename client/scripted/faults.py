"""Faults the scripted Messages API can inject, to test that the client survives real failures.

A plan names, per agent, which of its requests (counted from 1 by the fake server) get which
fault. Pass one to `aar run` as JSON in AAR_SCRIPTED_FAULTS, e.g.
`{"faults": [{"kind": "rate_limit", "requests": [1, 2]}]}`.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "rate_limit",  # 429 rate_limit_error, with retry-after
    "overloaded",  # 529 overloaded_error
    "server_error",  # 500 api_error
    "malformed",  # 200 whose body is not JSON
    "incomplete",  # 200 JSON without content or usage
    "tool",  # a tool call the researcher did not choose (e.g. one outside the allowlist, or a slow one)
    "hang",  # no answer at all (the client's timeout must end the call)
]

ENV = "AAR_SCRIPTED_FAULTS"


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    requests: list[int] = Field(min_length=1, description="The agent's request numbers (from 1) that get it.")
    agents: list[str] | None = Field(default=None, description="Only these agents; default all.")
    tool: str = "sandbox__exec"
    input: dict[str, Any] = Field(default_factory=lambda: {"command": "sleep 600"})
    retry_after_s: float = 0.05


class FaultPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faults: list[Fault] = Field(default_factory=list)
    latency_s: float = Field(default=0.0, ge=0, description="Added before every answer.")

    @classmethod
    def from_env(cls) -> FaultPlan:
        raw = os.environ.get(ENV)
        return cls.model_validate_json(raw) if raw else cls()

    def fault_for(self, agent: str, request_number: int) -> Fault | None:
        for fault in self.faults:
            if request_number in fault.requests and (fault.agents is None or agent in fault.agents):
                return fault
        return None
