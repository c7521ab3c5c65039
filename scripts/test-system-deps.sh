#!/usr/bin/env bash
# The servers and tools the test suite runs for real, from Debian's packages, installed once per machine:
# chromium (the UI's browser tests, driven by Playwright), bubblewrap (model host sandbox), PostgreSQL
# (replica and production-MLflow tests) and kubectl (the Kubernetes manifests' kustomize check).
# Needs root (apt-get) only when something is missing.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v bwrap >/dev/null || missing+=(bubblewrap)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v kubectl >/dev/null || missing+=(kubernetes-client)  # `kubectl kustomize` reads the rendered manifests
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "The test suite needs Debian's ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' and retry." >&2
    exit 1
fi
echo "Installing Debian's ${missing[*]} for the test suite..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
