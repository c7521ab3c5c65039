"""MLflow models-from-code the integration tests register (loaded by path, so a host needs no test import)."""
