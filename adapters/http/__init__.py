"""The HTTP side: one FastAPI app on its own port, beside the OCPP server on the same loop.

- `app.py`: `create_app(service)`, the system routes (`/healthz`, `/v2/status`);
- `envelope.py`: the seed's success envelope, JSend failures, error handlers, paging;
- `auth.py`: API keys from `Authorization: Bearer <key>`, `require_scope(...)`;
- `routing.py`: a router serving each path with and without its trailing slash;
- `server.py`: uvicorn on a socket of our own, started and stopped by `loadstar serve`.

Seed views are added as modules that build an `ApiRouter` and are included by `create_app`.
"""
