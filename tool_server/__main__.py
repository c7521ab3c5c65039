from tool_server.cli import app

app()
