"""The JSON API under /api/v1: API keys for integrations, the session cookie for the phone."""
