"""The gateway's OpenAPI document (``GET /openapi.json``): what clients and schema-driven fuzzers (schemathesis, in
the tests) may send, and every status the gateway answers with."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_USAGE = {
    "type": ["object", "null"],
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
}

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant", "developer"]},
        "content": {"type": "string"},
    },
}

_SAMPLING = {
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "stream": {"type": "boolean"},
}

_CHAT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role"],
                        "properties": {"role": {"const": "assistant"}, "content": {"type": ["string", "null"]}},
                    },
                    "finish_reason": {"type": "string"},
                },
            },
        },
        "usage": _USAGE,
    },
}

_TEXT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "text_completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {"type": "object", "required": ["text", "index"], "properties": {"text": {"type": "string"}}},
        },
        "usage": _USAGE,
    },
}

_KEY = {
    "type": "object",
    "required": ["id", "name", "hint", "revoked"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "hint": {"type": "string"},
        "models": {"type": ["array", "null"], "items": {"type": "string"}},
        "rpm": {"type": ["integer", "null"]},
        "tpm": {"type": ["integer", "null"]},
        "budget_usd": {"type": ["number", "null"]},
        "spent_usd": {"type": "number"},
        "reserved_usd": {"type": "number"},
        "created": {"type": "number"},
        "revoked": {"type": "boolean"},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "An error", "content": {"application/json": {"schema": _ERROR}}} for s in statuses}


_CALL_ERRORS = (400, 401, 403, 404, 413, 429, 499, 500, 502, 503, 504)


def document(models: list[str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a gateway serving ``models``."""
    model = {"type": "string", "enum": models} if models else {"type": "string"}
    chat_request = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": model,
            "messages": {"type": "array", "minItems": 1, "maxItems": 8, "items": _MESSAGE},
            **_SAMPLING,
        },
        "additionalProperties": False,
    }
    completion_request = {
        "type": "object",
        "required": ["model", "prompt"],
        "properties": {"model": model, "prompt": {"type": "string", "maxLength": 2000}, **_SAMPLING},
        "additionalProperties": False,
    }
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]

    def call(request: dict[str, Any], reply: dict[str, Any], summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "security": bearer,
                "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                "responses": {
                    "200": {
                        "description": "The answer (a JSON body, or server-sent events when streamed)",
                        "content": {"application/json": {"schema": reply}, "text/event-stream": {"schema": {}}},
                    },
                    **_errors(*_CALL_ERRORS),
                },
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "llmkit gateway", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/v1/chat/completions": call(chat_request, _CHAT_COMPLETION, "Chat completion"),
            "/v1/completions": call(completion_request, _TEXT_COMPLETION, "Text completion"),
            "/v1/models": {
                "get": {
                    "summary": "The models this key may use",
                    "security": bearer,
                    "responses": {
                        "200": {
                            "description": "A list",
                            "content": {"application/json": {"schema": {"type": "object", "required": ["data"]}}},
                        },
                        **_errors(401),
                    },
                }
            },
            "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
            "/admin/keys": {
                "get": {
                    "summary": "Every virtual key",
                    "security": bearer,
                    "responses": {"200": {"description": "Keys"}, **_errors(401, 403, 404)},
                },
                "post": {
                    "summary": "Create a virtual key (its secret is in the reply, once)",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string", "maxLength": 100},
                                        "models": {"type": "array", "items": model},
                                        "rpm": {"type": "integer", "minimum": 0},
                                        "tpm": {"type": "integer", "minimum": 0},
                                        "budget_usd": {"type": "number", "minimum": 0},
                                    },
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "The key", "content": {"application/json": {"schema": _KEY}}},
                        **_errors(400, 401, 403, 404, 413),
                    },
                },
            },
            "/admin/keys/{key_id}": {
                "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "summary": "One key and its usage",
                    "security": bearer,
                    "responses": {"200": {"description": "The key"}, **_errors(401, 403, 404)},
                },
                "delete": {
                    "summary": "Revoke a key",
                    "security": bearer,
                    "responses": {"200": {"description": "The revoked key"}, **_errors(401, 403, 404)},
                },
            },
        },
    }
