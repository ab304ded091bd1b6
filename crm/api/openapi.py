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
