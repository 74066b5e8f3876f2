"""Declarative data: recipes, extensions, patches, `when:` conditions, and the search path."""
