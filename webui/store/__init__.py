"""The workspace's own data: one SQLite file that features share (durable jobs now, request history next)."""
