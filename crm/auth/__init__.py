"""Login, logout, passwords, throttling and the per-request actor."""
