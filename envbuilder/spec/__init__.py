"""Declarative data: recipes, extension specs, `when:` conditions, and the search path."""
