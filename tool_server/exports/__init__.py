"""The catalog in each client's own format. A new export (a client, a dialect) goes here.

    openapi_doc   build_openapi, to_yaml: the OpenAPI document a Dify custom tool imports (pure)
    openai_tools  openai_tools, openai_tool: OpenAI function-calling tools, strict where possible (pure)
    mcp_server    McpEndpoint, MCP_PATH: the catalog as MCP tools over streamable HTTP (/mcp, per toolset at
                  /toolsets/{ts}/mcp, search mode at /mcp/search), calls via the gateway
"""
