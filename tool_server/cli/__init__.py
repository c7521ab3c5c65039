"""The `toolbridge` command: `up`, `status`, `tools`, `webhook` (main), `keys` and `audit` (keys), `bento`.

Heavy imports (MLflow, BentoML, uvicorn) happen inside the commands that need them, so `--help` is quick.
"""

from tool_server.cli.main import app

__all__ = ["app"]
