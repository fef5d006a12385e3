"""Wire formats, in both directions: llmkit's types to a service's JSON and back, and a client's request to llmkit's
types and back (what a gateway needs). Pure functions and small stateful stream parsers; no I/O."""
