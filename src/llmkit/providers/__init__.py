"""Providers: each one translates between llmkit's types and one service, and nothing more."""
