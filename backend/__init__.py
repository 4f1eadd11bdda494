"""The company's customer-facing backend for Kryptos Connect.

The Web SDK's endpoints (link token, token exchange, session, disconnect, holdings), the
signed-webhook receiver (Standard Webhooks) and, in sandbox mode with BACKEND_DEMO on, a demo
customer app. FastAPI on uvicorn (routers in `backend/routers/`, dependencies in
`backend/deps.py`, request and answer models in `backend/models.py`), over `services/`
(client, vault, audit log). Run with `python -m backend`; build in tests with
`backend.app.create_app`. Never imports `dashboard/`.
"""
