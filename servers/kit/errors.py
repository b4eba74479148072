"""The errors a tool raises for bad input; the SDK turns each into an `is_error` result.

The message is read by an agent, so it says what was wrong and what to do instead.
They derive from the SDK's `ToolError`, the exception it passes on to the caller
verbatim; any other exception is treated as a crash and its text withheld.
"""

from mcp.server.mcpserver.exceptions import ToolError


class ToolInputError(ToolError):
    """The call cannot be carried out as asked; nothing was changed."""


class NotFoundError(ToolInputError):
    """The call names something (a post, a snapshot, a file) that does not exist."""


class PermissionDeniedError(ToolInputError):
    """The calling agent may not do this."""


class LimitError(ToolInputError):
    """The call would pass a limit (a rate, a volume, a cost); the message names it and when it resets."""
