"""toolbridge_client: call Toolbridge tools from Python, with or without LangChain.

What an agent developer installs alone (`pip install toolbridge-client`): httpx, pydantic and langchain-core,
never MLflow, BentoML or the server. It imports nothing else of Toolbridge's; the server reuses its
`pydantic_models` (tool input JSON Schema → pydantic model) so the model host and the LangChain toolkit check
arguments the same way.

    client        ToolbridgeClient, AsyncToolbridgeClient and their error tree (ToolbridgeError, ...)
    langchain     ToolbridgeToolkit: one LangChain tool per catalog entry
    pydantic_models  model_from_schema, to_arguments
"""

from toolbridge_client.client import (
    DEFAULT_TIMEOUT,
    AsyncToolbridgeClient,
    FieldProblem,
    ModelRef,
    ToolbridgeClient,
    ToolbridgeConnectionError,
    ToolbridgeError,
    ToolCallError,
    ToolInfo,
    ToolNotFoundError,
    ToolUnavailableError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncToolbridgeClient",
    "FieldProblem",
    "ModelRef",
    "ToolCallError",
    "ToolInfo",
    "ToolNotFoundError",
    "ToolUnavailableError",
    "ToolbridgeClient",
    "ToolbridgeConnectionError",
    "ToolbridgeError",
]
