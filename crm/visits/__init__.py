"""Door visits: the agent's record of every knock, the door grid, locks, and the phone's sync."""
