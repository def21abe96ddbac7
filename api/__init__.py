"""The HTTP stack the runtime serves (and the command edge will share): a Litestar app on
uvicorn, behind one ASGI guard that checks Host, Origin, the bearer token, body and time limits
and concurrency before any route runs."""
