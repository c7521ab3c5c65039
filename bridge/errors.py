"""The bridge's exception tree: one root, so callers can catch everything the bridge raises in one place.

    BridgeError               root of every error the bridge raises on purpose
    ├── SchemaError           (bridge.schema) a signature cannot become a tool schema; also a ValueError
    ├── ToolInputError        (bridge.validation) tool arguments broke the input schema; one FieldProblem
    │                         per bad field, worded for an LLM
    ├── ToolNotFound          (bridge.invoker) no live tool of that name
    ├── ToolUnavailable       (bridge.invoker) the tool exists but cannot answer right now
    │   └── ToolTimeout       (bridge.invoker) the model did not answer within the call timeout
    ├── ModelFailure          (bridge.invoker) the model raised on input that passed validation
    ├── HostStartError        (bridge.hosts) a model host process failed to start
    ├── HostUnavailable       (bridge.host_client) a model host did not answer
    │   └── HostTimeout       (bridge.host_client) ... within the timeout
    ├── HostError             (bridge.host_client) a model host answered with an error
    │   └── OutputTooLarge    (bridge.host_client) ... or with more than TOOLBRIDGE_MAX_OUTPUT_BYTES
    ├── SandboxError          (bridge.host_sandbox) model hosts cannot be isolated as configured
    └── CacheError            (bridge.response_cache) the response cache cannot be set up as configured

Each subclass lives next to the code that raises it; this module holds only the root, so that every module
can import it without import cycles.
"""

from __future__ import annotations

__all__ = ["BridgeError"]


class BridgeError(Exception):
    """Root of the bridge's errors. Messages say what was wrong, what was expected and what to do."""
