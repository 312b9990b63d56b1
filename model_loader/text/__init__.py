"""Text handling: prompts, splitting long texts, tokens and the vocabulary, and parsing the model's answers."""
