"""The read model: the query side, folded from the event log into SQL (SQLite or PostgreSQL)."""
