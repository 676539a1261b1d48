"""Clara's companion state: the hormone model (and, next, the Organic Response System).

Pure state machines with an injected clock; persistence lives in
``storage/companion.py`` and the conversation sees them only through the
pipeline's prompt contributor and after-turn hook (``pipeline/mood.py``).
"""
