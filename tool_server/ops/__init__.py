"""What operators run and watch: metrics, logs, usage written back to MLflow, the embedded MLflow server.

    metrics          Metrics: Prometheus series of calls, cache, sync and hosts
    logs             configure_logging, REQUEST_ID: JSON or terminal log lines carrying the request id
    usage            UsageWriteback: call counts as `toolbridge.usage.*` tags in MLflow
    embedded_mlflow  EmbeddedMlflow: the default `mlflow server` on loopback (SQLite + local artifacts)
    call_stats       CallStats: per-tool calls, errors and latency a minute, last hour (/stats/calls)
"""
