"""API keys for integrations: stored hashed, shown once, scoped, revocable."""
