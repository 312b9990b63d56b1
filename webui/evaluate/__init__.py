"""The evaluation room: the 评测 Evaluate tab, POST /api/evaluate and the evaluation job they share."""
