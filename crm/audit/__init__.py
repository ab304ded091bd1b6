"""The append-only, hash-chained audit log of every change to business data."""
