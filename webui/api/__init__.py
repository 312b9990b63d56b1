"""The JSON API: routes for the three tasks, /health and /metrics, request schemas, middleware and /api/docs."""
