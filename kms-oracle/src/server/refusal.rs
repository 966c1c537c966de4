//! A refusal: the one type every "no" of the server becomes, with the stage that refused (a
//! metric label), the status, the reason the client reads and, once it is logged, its audit
//! entry. It renders itself ([`IntoResponse`]); attested endpoints log it first
//! ([`super::attested`]). Internal failures carry a generic reason: the detail goes to the log,
//! never to the client.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use covenant_kms_api::ErrorBody;
use covenant_mirror::{Deny, DenyStage, Finalized};

/// The stage that refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The request itself: body, JSON, chain id, limits.
    Request,
    /// The client's evidence (missing, unverifiable, not bound to the connection's key).
    Evidence,
    /// A decision against the chain.
    Decision(DenyStage),
}

impl Stage {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Evidence => "evidence",
            Self::Decision(d) => d.as_str(),
        }
    }
}

/// A refused request.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The stage that refused.
    pub(crate) stage: Stage,
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What the client is told (and the audit log records).
    pub(crate) reason: String,
    /// The block decided at, when one was used.
    pub(crate) block: Option<Finalized>,
    /// The refusal's audit entry, once logged.
    pub(crate) audit_seq: Option<u64>,
}

impl Refusal {
    fn new(stage: Stage, status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            stage,
            status,
            reason: reason.into(),
            block: None,
            audit_seq: None,
        }
    }

    /// A malformed or oversized request (400, or `status` for timeouts and sizes).
    pub(crate) fn request(status: StatusCode, reason: impl Into<String>) -> Self {
        Self::new(Stage::Request, status, reason)
    }

    /// A bad request (400).
    pub(crate) fn bad_request(reason: impl Into<String>) -> Self {
        Self::request(StatusCode::BAD_REQUEST, reason)
    }

    /// Evidence that does not verify (401).
    pub(crate) fn evidence(reason: impl Into<String>) -> Self {
        Self::new(Stage::Evidence, StatusCode::UNAUTHORIZED, reason)
    }

    /// Nothing by that name at the block (404).
    pub(crate) fn not_found(reason: impl Into<String>) -> Self {
        Self::new(Stage::Request, StatusCode::NOT_FOUND, reason)
    }

    /// The node cannot answer now (503): `reason` is what the client reads, `detail` is logged.
    pub(crate) fn unavailable(reason: impl Into<String>, detail: &dyn std::fmt::Display) -> Self {
        let reason = reason.into();
        tracing::warn!(target: "kms::server", %reason, %detail, "unavailable");
        Self::new(
            Stage::Decision(DenyStage::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE,
            reason,
        )
    }

    /// A failure inside this node (500): the client reads `reason`, `detail` is logged.
    pub(crate) fn internal(reason: impl Into<String>, detail: &dyn std::fmt::Display) -> Self {
        let reason = reason.into();
        tracing::error!(target: "kms::server", %reason, %detail, "internal error");
        Self::new(
            Stage::Decision(DenyStage::Unavailable),
            StatusCode::INTERNAL_SERVER_ERROR,
            reason,
        )
    }

    /// At `block`.
    pub(crate) fn at(mut self, block: Finalized) -> Self {
        self.block = Some(block);
        self
    }
}

impl From<Deny> for Refusal {
    /// A denial: 503 when a later answer may differ without any change on chain (stale or
    /// unreachable view), 403 for a decision.
    fn from(d: Deny) -> Self {
        let status = if d.stage.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::FORBIDDEN
        };
        Self {
            stage: Stage::Decision(d.stage),
            status,
            reason: d.reason,
            block: d.block,
            audit_seq: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.reason,
            audit_seq: self.audit_seq,
        };
        (self.status, Json(body)).into_response()
    }
}
