"""A protocol-faithful Gradient API server (real HTTP on 127.0.0.1), built from Part A of
``shared/protocols/gradient-and-aixplain.md``.

It checks what the real service would: the bearer token and workspace header, the query of the model listing, the
completion body (every key known, the types and bounds of the SDK's own validation), and answers with the documented
shapes, including the ``{type, message, payload}`` error union. Every request is recorded (method, path, query,
headers, raw body) so tests can assert the wire format. ``script`` queues canned answers for fault injection;
``outputs`` queues the text of the next completions (otherwise the answer echoes the query).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from tests.servers.recording import Canned, Recorded, RecordingHandler, RecordingServer
from tests.servers.recording import start as start_server

__all__ = ["Canned", "GradientServer", "Recorded", "start"]

TOKEN = "tok123"
WORKSPACE = "ws_abc"
BASE_MODEL_ID = "99148c6a-c2a0-4fbe-a4a7-e7c05bdb8a09_base_ml_model"
OTHER_BASE_ID = "11111111-2222-3333-4444-555555555555_base_ml_model"
ADAPTER_ID = "7eb2b9de-1ad8-4a6b-b1a4-5b9e5e7f5b3c_model_adapter"
BASE_SLUG = "llama2-7b-chat"

_BODY_KEYS = {"query", "maxGeneratedTokenCount", "temperature", "topK", "topP", "autoTemplate", "guidance", "rag"}


class GradientServer(RecordingServer):
    prefix = "/api"

    def __init__(self) -> None:
        super().__init__(GradientHandler)
        self.collections = {"col1"}


def _validation_error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {
        "type": "bodyParsingError",
        "message": "Invalid request body",
        "payload": {"validationError": [message], "formattedValidationError": message},
    }


def _strict_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_completion_body(body: Any) -> str | None:
    """The SDK's client-side validation, as the server would apply it: the problem, or None."""
    if not isinstance(body, dict):
        return "body must be an object"
    unknown = set(body) - _BODY_KEYS
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    query = body.get("query")
    if not isinstance(query, str) or not query:
        return "query must be a non-empty string"
    tokens = body.get("maxGeneratedTokenCount")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 < tokens < 512):
        return "maxGeneratedTokenCount must be an integer in 1..511"
    for key in ("temperature", "topP"):
        if body.get(key) is not None and not _strict_number(body[key]):
            return f"{key} must be a number"
    if body.get("topK") is not None and (not isinstance(body["topK"], int) or isinstance(body["topK"], bool)):
        return "topK must be an integer"
    if body.get("autoTemplate") is not None and not isinstance(body["autoTemplate"], bool):
        return "autoTemplate must be a boolean"
    guidance = body.get("guidance")
    if guidance is not None:
        values = guidance.get("value") if isinstance(guidance, dict) else None
        if (
            not isinstance(guidance, dict)
            or guidance.get("type") != "choice"
            or not isinstance(values, list)
            or not 1 <= len(values) <= 10
            or not all(isinstance(v, str) and 1 <= len(v) <= 32 for v in values)
        ):
            return "guidance must be {type: choice, value: [1..10 strings of 1..32 chars]}"
    rag = body.get("rag")
    if rag is not None and (not isinstance(rag, dict) or not rag.get("collectionId")):
        return "rag must be {collectionId: string}"
    return None


class GradientHandler(RecordingHandler):
    server: GradientServer

    def route(self, request: Recorded) -> None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            self.reply(401, {"message": "Unauthorized"})
            return
        if request.headers.get("x-gradient-workspace-id") != WORKSPACE:
            self.reply(403, {"message": "Forbidden: unknown workspace"})
            return
        segments = [unquote(s) for s in request.path.split("/") if s]
        if segments[:2] != ["api", "models"]:
            self.reply(404, {"message": "Not found"})
        elif request.method == "GET" and len(segments) == 2:
            self._list_models(request)
        elif request.method == "GET" and len(segments) == 3:
            self._get_adapter(segments[2])
        elif request.method == "POST" and len(segments) == 4 and segments[3] == "complete":
            self._complete(segments[2], request)
        else:
            self.reply(404, {"message": "Not found"})

    def _list_models(self, request: Recorded) -> None:
        if request.query.get("capability", ["any"])[0] not in ("any", "complete", "fineTune"):
            self.reply(400, {"type": "queryOrPathParsingError", "message": "bad capability", "payload": {}})
            return
        base = [
            {"type": "baseModel", "id": OTHER_BASE_ID, "name": "Bloom 560", "slug": "bloom-560",
             "capabilities": ["complete"]},
            {"type": "baseModel", "id": BASE_MODEL_ID, "name": "Llama 2 7B", "slug": BASE_SLUG,
             "capabilities": ["complete", "fineTune"]},
        ]  # fmt: skip
        adapter = {"type": "modelAdapter", "id": ADAPTER_ID, "name": "my adapter", "baseModelId": BASE_MODEL_ID,
                   "latestUpdateTime": "2024-01-01T00:00:00.000Z"}  # fmt: skip
        only_base = request.query.get("onlyBase", ["False"])[0] == "True"
        self.reply(200, {"models": base if only_base else [*base, adapter]})

    def _get_adapter(self, model_id: str) -> None:
        if model_id != ADAPTER_ID:
            self.reply(404, {"message": f"Model adapter {model_id} not found"})
            return
        self.reply(200, {"type": "modelAdapter", "id": ADAPTER_ID, "name": "my adapter",
                          "baseModelId": BASE_MODEL_ID, "latestUpdateTime": "2024-01-01T00:00:00.000Z"})  # fmt: skip

    def _complete(self, model_id: str, request: Recorded) -> None:
        if model_id not in (BASE_MODEL_ID, OTHER_BASE_ID, ADAPTER_ID):
            self.reply(404, {"type": "unknownBaseModel", "message": f"Unknown model {model_id}"})
            return
        try:
            body = request.json()
        except ValueError:
            self.reply(*_validation_error("body is not JSON"))
            return
        problem = check_completion_body(body)
        if problem:
            self.reply(*_validation_error(problem))
            return
        query: str = body["query"]
        if "FLAGME" in query:
            payload = {"flaggedContent": [{"sample": "FLAGME"}]}
            self.reply(400, {"type": "flaggedContent", "message": "Content was flagged", "payload": payload})
            return
        rag = body.get("rag")
        if rag is not None:
            if rag["collectionId"] not in self.server.collections:
                self.reply(404, {"type": "unknownRagCollection", "message": "Unknown RAG collection"})
                return
            if body.get("autoTemplate") is False:
                self.reply(400, {"type": "ragRequiresAutoTemplating", "message": "RAG requires auto-templating"})
                return
        guidance = body.get("guidance")
        output = guidance["value"][0] if guidance else self.server.next_output(f"You said: {query}")
        tokens = body.get("maxGeneratedTokenCount")
        if tokens is not None:
            output = " ".join(output.split(" ")[:tokens])
        self.reply(200, {"finishReason": "stop", "generatedOutput": output})


def start() -> GradientServer:
    return start_server(GradientServer())
