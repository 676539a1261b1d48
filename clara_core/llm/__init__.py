"""Clara's LLM layer: provider-neutral types, wire adapters, tiers, retries.

``types`` is the vocabulary; ``providers/`` hold one adapter per *wire API*
(OpenAI Chat Completions, Anthropic Messages); ``registry`` turns settings
into configured endpoints (which provider, which key, which headers), and
``service.LLMService`` is what the pipeline talks to.
"""
