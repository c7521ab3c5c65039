"""Shadow traffic, the tool server's side: the comparison windows written back to MLflow, the disagreement
examples kept in the database for admins, `GET /shadow`, and the Prometheus series per shadow version.
The mirroring itself is the bridge's (`bridge.shadow`)."""
