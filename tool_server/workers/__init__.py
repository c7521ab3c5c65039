"""Several tool-server workers on one port, one set of model hosts (`toolbridge up --workers N`).

The `up` process becomes the controller: it runs the registry watcher and the bridge (hosts, reconciler,
supervisor) as a single process does, publishes the routing table on a loopback control endpoint, and starts N
worker processes that share its listening socket. Each worker serves the HTTP API from a Runtime that follows
the published table instead of starting hosts or a watcher (`table.py` encodes and rebuilds it,
`follower.py` follows it, `control.py` serves it, `supervisor.py` runs the workers, `worker.py` is a worker).
"""

__all__: list[str] = []
