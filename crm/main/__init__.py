"""Home page, navigation and error pages."""
