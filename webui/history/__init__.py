"""Request history and feedback: every answer kept by its request id, marked right or wrong, scored again."""
