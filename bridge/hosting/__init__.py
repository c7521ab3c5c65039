"""bridge.hosting: model hosts Toolbridge does not run itself.

remote_pool: a pool of model-host replicas reached by URL (a Kubernetes Service, or several URLs balanced
client-side), that any approved version is routed to by the tag `toolbridge.pool`; Toolbridge routes and
smoke-tests through it and reports its health, but never starts, restarts or stops its replicas.
"""
