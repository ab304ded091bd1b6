"""People, field work and money."""
