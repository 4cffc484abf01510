"""The HTTP side: one ASGI app (webhook, health, later the operator console) and the server that runs it."""
