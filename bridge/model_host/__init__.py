"""The model host: the generic BentoML service (service) that loads MLflow models by URI (loader), checks each
row against the version's own signature (payload) and runs concurrent calls of one version as one batch
(batching). It runs in its own process, never in the tool server; the bridge talks to it over HTTP.
"""
