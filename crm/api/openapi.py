"""The OpenAPI description served at /api/v1/openapi.json; each feature adds its paths here."""
from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def build_spec(base_path: str) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Doorstep API", "version": "1"},
        "servers": [{"url": base_path}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": {
            "/contracts/{number}/events": {
                "post": {
                    "summary": "Report a contract lifecycle event (billing, installers)",
                    "security": [{"apiKey": []}],
                    "parameters": [{"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["event_id", "event", "at"],
                        "properties": {
                            "event_id": {"type": "string", "minLength": 1, "maxLength": 100},
                            "event": {"type": "string",
                                      "enum": ["paid", "installation_scheduled", "activated", "cancelled"]},
                            "at": {"type": "string", "format": "date-time"},
                            "reason": {"type": "string", "maxLength": 1000},
                        }}}}},
                    "responses": {
                        "201": {"description": "applied; the status and the ledger entries written"},
                        "200": {"description": "a replay of the same event_id with the same data: the original answer"},
                        "401": _error("no or bad API key"),
                        "403": _error("the key lacks scope contracts:events"),
                        "404": _error("unknown contract"),
                        "409": _error("a replay with different data, or a transition the lifecycle refuses"),
                        "422": _error("invalid body"),
                    },
                }
            },
            "/me": {
                "get": {
                    "summary": "Who is calling",
                    "security": [{"apiKey": []}, {"session": []}],
                    "responses": {
                        "200": {"description": "the caller",
                                "content": {"application/json": {"schema": {
                                    "type": "object", "required": ["kind"],
                                    "properties": {"kind": {"type": "string", "enum": ["api_key", "user"]}}}}}},
                        "401": _error("no or bad credentials"),
                    },
                }
            },
        },
    }
