"""tool_server.deploy: what Toolbridge looks like on the engines users already run.

kubernetes: the manifests `toolbridge deploy kubernetes` writes (tool-server replicas, one Deployment, Service
and HorizontalPodAutoscaler per model-host pool, ConfigMap, Secret template, kustomization), rendered from
plain dicts: no templating engine.
"""
