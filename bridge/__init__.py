"""bridge: an approved model version becomes a tool, served by BentoML model hosts.

Pure transforms:  schema (signature → JSON Schema), toolspec (ToolSpec), validation (arguments → 422 problems)
The control loop: reconciler (desired vs actual, level-triggered), live (the routing table), runtime (Bridge)
Model hosts:      hosts, host_pool, process_group (processes), host_sandbox (what a host may see: a model is
                  code), host_client (HTTP), model_host/ (the service)
Calls:            invoker (route, cache, predict, shape), response_cache
Packaging:        bento_build (one version as a deployable Bento)
Beyond one machine: hosting/ (remote host pools, the model host as a Bento)
Errors:           errors (one tree, root BridgeError)

Imports registry_sync's types (and the client's schema → pydantic builder), never tool_server. It is the only
package that imports bentoml. Modules are imported by name; nothing is re-exported here.
"""
