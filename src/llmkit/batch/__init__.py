"""Batch jobs: a JSONL file of requests answered as a JSONL file of records, fast, inside rate limits and a budget,
resumable after a crash, on one machine or on a Ray cluster (``llmkit batch`` on the command line).

Example:
    >>> import tempfile, os
    >>> import llmkit.batch
    >>> from llmkit.providers.function import FunctionLLM
    >>> out = os.path.join(tempfile.mkdtemp(), "answers.jsonl")
    >>> llm = FunctionLLM(chat_fn=lambda messages, kwargs: "42")
    >>> llmkit.batch.run([{"custom_id": "q1", "prompt": "6 x 7?"}], out, llm, rpm=600).succeeded
    1

Modules: :mod:`~llmkit.batch.input` (lines -> requests), :mod:`~llmkit.batch.output` (the crash-safe writer and
resume), :mod:`~llmkit.batch.limits` (rpm, tpm and budget, local or in Redis), :mod:`~llmkit.batch.runner` (the
engine), :mod:`~llmkit.batch.progress` (the display, extra ``batch`` for rich), :mod:`~llmkit.batch.ray` (extra
``ray``).
"""

from llmkit.batch.runner import BatchResult, arun, run

__all__ = ["BatchResult", "arun", "run"]
