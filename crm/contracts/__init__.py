"""Contracts: signing with a locked rate, the status lifecycle, and the events that move money."""
