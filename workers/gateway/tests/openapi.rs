//! `schemas/gateway.openapi.json` must match `cpo_gateway::openapi::document()`.
//! Regenerate with `make schemas` (runs this test with `UPDATE_SCHEMAS=1`).

use std::path::PathBuf;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/gateway.openapi.json")
}

#[test]
fn committed_openapi_document_is_current() {
    let expected = cpo_shared::schema::render(&cpo_gateway::openapi::document());
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(path(), &expected).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path()).unwrap_or_default();
    assert!(
        committed == expected,
        "schemas/gateway.openapi.json is stale: run `make schemas` and commit it"
    );
}

#[test]
fn the_document_describes_every_route_the_gateway_serves() {
    let document = cpo_gateway::openapi::document();
    assert_eq!(document["openapi"], "3.1.0");
    for route in [
        "/webhooks/sendgrid",
        "/webhooks/ses",
        "/webhooks/mailgun",
        "/webhooks/cpo",
        "/u/{token}",
        "/v1/campaigns",
        "/v1/campaigns/{id}",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            document["paths"].get(route).is_some(),
            "{route} undocumented"
        );
    }
    let sendgrid = document["paths"]["/webhooks/sendgrid"]["post"]["parameters"].to_string();
    assert!(sendgrid.contains(cpo_gateway::verify::sendgrid::SIGNATURE_HEADER));
}
