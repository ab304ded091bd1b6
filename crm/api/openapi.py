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
            "/buildings": {
                "post": {
                    "summary": "Report newly connected buildings (the network system); idempotent on external_id",
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["type", "features"],
                        "description": "A GeoJSON FeatureCollection of Point, Polygon or MultiPolygon features with "
                                       "properties external_id, address, apartments (required), entrances, floors, "
                                       "connected_at",
                        "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                                       "features": {"type": "array", "items": {"type": "object"}}}}}}},
                    "responses": {
                        "200": {"description": "what was imported; each rejected record with its index and reason",
                                "content": {"application/json": {"schema": {
                                    "type": "object",
                                    "required": ["imported", "updated", "unchanged", "rejected", "zones"],
                                    "properties": {
                                        "imported": {"type": "integer"}, "updated": {"type": "integer"},
                                        "unchanged": {"type": "integer"},
                                        "rejected": {"type": "array", "items": {"type": "object", "properties": {
                                            "index": {"type": "integer"}, "external_id": {"type": "string",
                                                                                          "nullable": True},
                                            "reason": {"type": "string"}}}},
                                        "zones": {"type": "object",
                                                  "additionalProperties": {"type": "string", "nullable": True}}}}}}},
                        "401": _error("no or bad API key"),
                        "403": _error("the key lacks scope buildings:write"),
                        "422": _error("the body is not a GeoJSON FeatureCollection"),
                    },
                }
            },
            "/map/polygons": {
                "get": {"summary": "Territories and zones the signed-in user sees, as GeoJSON, with owners and "
                                   "coverage/penetration per zone",
                        "security": [{"session": []}],
                        "responses": {"200": {"description": "a FeatureCollection"}, "401": _error("not signed in"),
                                      "403": _error("not for this role")}}
            },
            "/map/buildings": {
                "get": {"summary": "Buildings the signed-in user sees: compact rows [id, lat, lon, status, zone, territory]",
                        "security": [{"session": []}],
                        "responses": {"200": {"description": "fields, statuses and rows"},
                                      "401": _error("not signed in"), "403": _error("not for this role")}}
            },
            "/map/buildings/{building_id}": {
                "get": {"summary": "One building the signed-in user sees: address, flats, status, coverage and "
                                   "penetration",
                        "security": [{"session": []}],
                        "parameters": [{"name": "building_id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}],
                        "responses": {"200": {"description": "the building"}, "401": _error("not signed in"),
                                      "403": _error("not for this role"), "404": _error("not yours to see")}}
            },
            "/map/territories/{territory_id}": {
                "put": {"summary": "Redraw or hand over a territory (sales head): {name, geometry, supervisor_id}; "
                                   "the old geometry is kept",
                        "security": [{"session": []}],
                        "parameters": [{"name": "territory_id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}],
                        "responses": {"200": {"description": "saved; buildings re-placed"},
                                      "400": _error("missing X-CSRFToken"), "401": _error("not signed in"),
                                      "403": _error("not the sales head"), "404": _error("not yours to see"),
                                      "422": _error("invalid or overlapping (the error names the polygon)")}}
            },
            "/map/zones/{zone_id}": {
                "put": {"summary": "Redraw or reassign a zone (supervisor): {name, geometry, territory_id, agent_id, "
                                   "valid_from, valid_to}",
                        "security": [{"session": []}],
                        "parameters": [{"name": "zone_id", "in": "path", "required": True,
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}],
                        "responses": {"200": {"description": "saved; buildings re-placed"},
                                      "400": _error("missing X-CSRFToken"), "401": _error("not signed in"),
                                      "403": _error("not the territory's supervisor"),
                                      "404": _error("not yours to see"),
                                      "422": _error("outside the territory, overlapping, or invalid")}}
            },
            "/map/{kind}/{polygon_id}/retire": {
                "post": {"summary": "Retire a territory or zone (never deleted); its buildings go back to a queue",
                         "security": [{"session": []}],
                         "parameters": [{"name": "kind", "in": "path", "required": True,
                                         "schema": {"type": "string", "enum": ["territories", "zones"]}},
                                        {"name": "polygon_id", "in": "path", "required": True,
                                         "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}}],
                         "responses": {"200": {"description": "retired; how many buildings moved"},
                                       "400": _error("missing X-CSRFToken"), "401": _error("not signed in"),
                                       "403": _error("not allowed"), "404": _error("not yours to see"),
                                       "409": _error("already retired")}}
            },
            "/map/territories": {
                "post": {"summary": "Draw a territory (sales head): {name, geometry, supervisor_id}",
                         "security": [{"session": []}],
                         "responses": {"201": {"description": "created; buildings inside"},
                                       "422": _error("invalid, self-intersecting or overlapping (the error names "
                                                     "the conflicting polygon)")}}
            },
            "/map/zones": {
                "post": {"summary": "Draw a zone (supervisor): {name, geometry, territory_id, agent_id, valid_from, "
                                    "valid_to}",
                         "security": [{"session": []}],
                         "responses": {"201": {"description": "created; buildings inside"},
                                       "422": _error("outside the territory, overlapping a zone, or invalid")}}
            },
            "/me/zones": {
                "get": {"summary": "The agent's zones today with their buildings, each building's door grid "
                                   "(grid[entrance][floor] = flats) and each flat's last outcome, lock and contract",
                        "security": [{"session": []}],
                        "responses": {"200": {"description": "{\"zones\": [...]}"}, "401": _error("not signed in"),
                                      "403": _error("not an agent")}}
            },
            "/sync": {
                "post": {
                    "summary": "The phone's queue: visits and contracts with client ids; a retry never duplicates",
                    "security": [{"session": []}],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["items"],
                        "properties": {"items": {"type": "array", "maxItems": 500, "items": {"type": "object"}}}}}}},
                    "responses": {
                        "200": {"description": "one result per item, in order: client_id, status (created, duplicate, "
                                               "rejected), id, contract_number, error {code, message, fields}"},
                        "400": _error("missing X-CSRFToken"), "401": _error("not signed in"),
                        "403": _error("not an agent"), "422": _error("not {items: [...]}"),
                    },
                }
            },
            "/doors/unlock": {
                "post": {"summary": "A supervisor reopens a door locked by already_subscriber or do_not_knock: "
                                    "{building_id, flat, reason}",
                         "security": [{"session": []}],
                         "responses": {"201": {"description": "unlocked"}, "403": _error("not the territory's "
                                                                                         "supervisor"),
                                       "404": _error("unknown building"), "409": _error("not locked"),
                                       "422": _error("no reason or unknown flat")}}
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
