"""tool_server: what agents and app builders see — catalog, exports, invocation — and the CLI.

Nothing of Toolbridge imports it.
"""

__all__: list[str] = []
