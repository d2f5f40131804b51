"""A simulated OpenAI-compatible endpoint, with rate limits and injected faults."""
