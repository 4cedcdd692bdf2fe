"""Bridges to other libraries' types (optional extras, imported lazily by each module)."""
