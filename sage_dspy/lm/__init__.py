"""Language models and their plumbing: LMs per role (roles.py), their settings, prices, usage counting,
in-flight call slots, the adapters (chat, JSON, JSON schema) and the choice among them, ReAct, bounded contexts. Imports offline/ (the default LM) and
the root's answers/errors/redact only.
"""
