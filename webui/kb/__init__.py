"""The knowledge-base room: documents cut into passages, GTE search, SeqGPT summaries; routes, service and tab."""
