"""Discovery at registry scale: what an agent or app builder finds in a catalog of hundreds of tools.

    settings     DiscoverySettings: lint policy, description limit, toolset descriptions, embedding ranker
    toolsets     toolsets from the model tag `toolbridge.toolsets` (pure)
    lint         the catalog lint: what agents will read, checked at each sync (pure)
    search       lexical (BM25) ranking of tools over their names, descriptions, fields, labels, toolsets
    stemmer      the Porter stemmer search matches words with (pure)
    catalog      Discovery: the catalog per version: lint, quarantine, toolsets, search, per-key caches
    search_mode  the two tools of search mode, `find_tools` and `call_tool` (MCP and OpenAI shapes)

Core logic only: no FastAPI here (routes live in tool_server/api/discovery.py, MCP in exports/mcp_server.py).
"""
