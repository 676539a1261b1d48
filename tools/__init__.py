"""The model's tools: one registry, built-ins registered like plug-ins."""
