//! The gateway's OpenAPI 3.1 description, built from the same constants the
//! routes use; `schemas/gateway.openapi.json` is this, rendered, and a test
//! fails when the committed file is stale (`make schemas` rewrites it).

use serde_json::{Value, json};

use crate::verify::sendgrid::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// Answers every webhook route shares.
fn webhook_responses() -> Value {
    json!({
        "200": {
            "description": "Verified; every event published to the events queue and confirmed by the broker (or a duplicate, unmatched or ignored)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookResult"}}}
        },
        "400": error_response("Malformed JSON or event"),
        "401": error_response("Bad or missing signature, stale timestamp, replayed token, unlisted certificate host"),
        "404": error_response("This source is not enabled on this gateway"),
        "413": error_response("Body larger than gateway.max_body_bytes"),
        "415": error_response("Wrong content type"),
        "422": error_response("Unknown event type"),
        "503": error_response("Broker or Redis unavailable: retry (Retry-After)")
    })
}

fn webhook(
    summary: &str,
    description: &str,
    content_type: &str,
    security: Value,
    parameters: Value,
) -> Value {
    json!({"post": {
        "summary": summary,
        "description": description,
        "security": security,
        "parameters": parameters,
        "requestBody": {"required": true, "content": {content_type: {"schema": {}}}},
        "responses": webhook_responses()
    }})
}

fn header_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}})
}

/// The document.
pub fn document() -> Value {
    let token = json!({"name": "token", "in": "path", "required": true,
        "description": "Unsubscribe token: HMAC over (campaign id, customer id)",
        "schema": {"type": "string", "maxLength": cpo_shared::unsubscribe::MAX_TOKEN_CHARS}});
    let html = |description: &str| json!({"description": description, "content": {"text/html": {"schema": {"type": "string"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cpo gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ESP webhooks (verified, deduplicated, published to the events queue), RFC 8058 one-click unsubscribes and the CRM's campaign API. Each source is enabled by its own gateway.* settings; the others answer 404."
        },
        "paths": {
            "/webhooks/sendgrid": webhook(
                "SendGrid Signed Event Webhook",
                "A JSON array of events; ECDSA P-256 signature over the timestamp header followed by the raw body. Timestamps older than gateway.sendgrid.max_age_s (300) are refused.",
                "application/json",
                json!([]),
                json!([header_parameter(SIGNATURE_HEADER, "base64 ASN.1 DER ECDSA signature"),
                       header_parameter(TIMESTAMP_HEADER, "Unix seconds")])),
            "/webhooks/ses": webhook(
                "Amazon SES events through SNS",
                "An SNS message (Notification, SubscriptionConfirmation, UnsubscribeConfirmation) signed with SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA); SigningCertURL and SubscribeURL must be https on sns.<region>.amazonaws.com for a region in gateway.ses.regions.",
                "text/plain",
                json!([]),
                json!([])),
            "/webhooks/mailgun": webhook(
                "Mailgun webhook",
                "{signature: {timestamp, token, signature}, event-data: {...}}; signature = hex HMAC-SHA256(timestamp + token) with the signing key; a token seen before is refused.",
                "application/json",
                json!([]),
                json!([])),
            "/webhooks/cpo": webhook(
                "Events in cpo's own format",
                "One event object or an array of them: {event_id, message_id, type, timestamp}.",
                "application/json",
                json!([{"bearer": []}]),
                json!([])),
            "/u/{token}": {
                "get": {
                    "summary": "Unsubscribe confirmation page",
                    "parameters": [token.clone()],
                    "responses": {"200": html("The page, with a form that posts back"), "400": html("Invalid link"), "404": html("Unsubscribes not enabled")}
                },
                "post": {
                    "summary": "One-click unsubscribe (RFC 8058)",
                    "parameters": [token],
                    "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {
                        "type": "object",
                        "properties": {"List-Unsubscribe": {"const": "One-Click"}, "confirm": {"const": "yes"}}
                    }}}},
                    "responses": {
                        "200": html("Suppressed, durably in the store (idempotent)"),
                        "400": html("Invalid link or body"),
                        "404": html("Unsubscribes not enabled"),
                        "415": html("Not a form"),
                        "503": html("Store unavailable: retry")
                    }
                }
            },
            "/v1/campaigns": {"post": {
                "summary": "Queue a campaign, as cpo enqueue does",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "campaign-request.json"}},
                    "application/yaml": {"schema": {"$ref": "campaign-request.json"}}
                }},
                "responses": {
                    "202": {"description": "Queued", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["campaign_id"], "properties": {"campaign_id": {"type": "string"}}}}}},
                    "401": error_response("Bad bearer token"),
                    "404": error_response("Campaign API not enabled"),
                    "413": error_response("Body too large"),
                    "415": error_response("Wrong content type"),
                    "422": error_response("Invalid campaign: the message names the key or rule"),
                    "503": error_response("Broker unavailable: retry")
                }
            }},
            "/v1/campaigns/{id}": {"get": {
                "summary": "Where a campaign stands (the cpo status --json document)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": cpo_shared::campaign::CAMPAIGN_ID_PATTERN}}],
                "responses": {
                    "200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CampaignStatus"}}}},
                    "401": error_response("Bad bearer token"),
                    "404": {"description": "Unknown campaign (or API not enabled)", "content": {"application/json": {"schema": {}}}},
                    "503": error_response("Redis unavailable: retry")
                }
            }},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "WebhookResult": {"type": "object", "properties": {
                    "published": {"type": "integer"}, "duplicates": {"type": "integer"},
                    "unmatched": {"type": "integer"}, "ignored": {"type": "integer"},
                    "confirmed": {"type": "boolean"}}},
                "CampaignStatus": {"type": "object", "required": ["campaign_id", "state"], "properties": {
                    "campaign_id": {"type": "string"},
                    "state": {"enum": ["starting", "running", "waiting", "complete"]},
                    "outstanding": {"type": ["integer", "null"]},
                    "dead_letters_pending": {"type": "integer"},
                    "counters": {"type": "object", "additionalProperties": {"type": "integer"}}}}
            }
        }
    })
}
