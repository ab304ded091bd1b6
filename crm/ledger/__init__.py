"""Rate versions and the append-only, hash-chained commission ledger."""
