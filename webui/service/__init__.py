"""How any call is served: admission through the model gate, timing, metrics, request logs, GPU status, shutdown."""
