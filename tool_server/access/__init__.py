"""Who may call what, how often, and the record of what they called: the tool server's own state.

    scopes   Principal, may_call, parse_scopes, the access errors (Unauthenticated, Forbidden, RateLimited)
    keys     KeyStore, ensure_admin_key: API keys stored as SHA-256 hashes
    limits   RateLimiter, TokenBucket: per-key rate limits
    audit    AuditLog, AuditRecord, read_records: one record per call, written off the call path
    db       make_engine and the tables (SQLite by default, PostgreSQL to share them)

A call is authorised in `tool_server.calls.Gateway`, which asks `scopes.may_call`.
"""
