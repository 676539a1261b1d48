"""The conversation pipeline: context -> model (streamed) -> tool loop -> events."""
