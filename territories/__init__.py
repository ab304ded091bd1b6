"""Buildings, territories, zones, assignment and maps."""
