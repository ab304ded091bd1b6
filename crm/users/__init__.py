"""Users, roles, the manager hierarchy and the scope every query stays inside."""
