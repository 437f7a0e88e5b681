"""Language models and their plumbing: LMs per role (roles.py), their settings, prices, usage counting,
in-flight call slots, the chat adapter, ReAct and bounded contexts. Imports offline/ (the default LM) and
the root's answers/errors/redact/breaker only.
"""
