//! The CRM's campaign API: `POST /v1/campaigns` takes a campaign request (the
//! same schema and checks as `cpo enqueue`) and answers 202 once it is queued;
//! `GET /v1/campaigns/{id}` answers the `cpo status --json` document. The
//! validation and the status live in the `cpo` binary, behind [`CampaignApi`],
//! so this crate does not depend on it.

use std::time::Instant;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::metrics::metrics;
use crate::server::Gateway;
use crate::server::reply::{Refusal, finish, read_body, require_media_type};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is invalid; the message names the key or rule.
    #[error("{0}")]
    Invalid(String),
    /// Broker or Redis down: retry later.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait CampaignApi: Send + Sync {
    /// Validates a campaign request (JSON or YAML text) and queues it; the campaign id.
    async fn submit(&self, request: &str) -> Result<String, ApiError>;
    /// The status document of a campaign, `None` when no stage has reported it.
    async fn status(&self, campaign_id: &str) -> Result<Option<Value>, ApiError>;
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Invalid(m) => Refusal::Unprocessable {
                reason: "malformed_event",
                message: m,
            },
            ApiError::Unavailable(m) => Refusal::Unavailable(m),
        }
    }
}

impl Gateway {
    fn campaign_api(&self, headers: &HeaderMap) -> Result<&dyn CampaignApi, Refusal> {
        let (Some(api), Some(token)) = (&self.inner.campaigns, &self.inner.api_token) else {
            return Err(Refusal::NotFound);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        crate::verify::bearer(given, token).map_err(Refusal::Unauthorized)?;
        Ok(api.as_ref())
    }

    async fn submit_campaign(&self, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
        let api = self.campaign_api(headers)?;
        require_media_type(headers, &["application/json", "application/yaml"])?;
        let bytes = read_body(headers, body, self.inner.config.max_body_bytes).await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Refusal::bad("malformed_json", "body is not UTF-8"))?;
        let campaign_id = api.submit(text).await?;
        Ok(json!({"campaign_id": campaign_id}))
    }
}

pub async fn submit(State(gateway): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = gateway.submit_campaign(&headers, body).await;
    metrics()
        .seconds
        .with_label_values(&["campaigns"])
        .observe(started.elapsed().as_secs_f64());
    let mut response = finish("campaigns", "api", result);
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::ACCEPTED;
    }
    response
}

pub async fn status(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result = async {
        let api = gateway.campaign_api(&headers)?;
        cpo_shared::campaign::check_campaign_id(&id)
            .map_err(|e| Refusal::bad("malformed_event", e.to_string()))?;
        api.status(&id).await.map_err(Refusal::from)
    }
    .await;
    metrics()
        .seconds
        .with_label_values(&["campaigns"])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(Some(document)) => finish("campaigns", "api", Ok(document)),
        Ok(None) => {
            metrics()
                .requests
                .with_label_values(&["campaigns", "not_found"])
                .inc();
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"campaign_id": id, "state": "unknown"})),
            )
                .into_response()
        }
        Err(refusal) => finish("campaigns", "api", Err(refusal)),
    }
}
