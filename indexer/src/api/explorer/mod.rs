//! The explorer: server-rendered pages for DAO voters and app users, made from the same loaders
//! as the JSON API (so a page and its JSON cannot disagree) at the mirror's finalized block,
//! which every page names. Plain HTML that works without JavaScript; a small script adds the
//! live parts (countdowns, and refreshing marked regions on each finalized block from the change
//! feed). Read-only: no page writes anything or costs gas.
//!
//! It owns presentation only: no query here decides policy.

mod apps;
mod calls;
mod kms;
mod layout;
mod proposals;

use axum::{
    Form, Router,
    extract::{DefaultBodyLimit, Path, Query, State},
    handler::Handler,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use maud::Markup;
use serde::Deserialize;

use super::{ApiError, ApiState, timestamp_at};

const CSS: &str = include_str!("assets/explorer.css");
const JS: &str = include_str!("assets/explorer.js");

/// Pages may load only this origin's script and style, be framed by no one, and post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The explorer's routes (HTML and its two assets).
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/proposals/{id}", get(proposal))
        .route("/apps", get(apps_list))
        .route("/apps/{address}", get(app))
        .route("/kms", get(kms_page))
        // GET too: the page's live refresh reloads the URL it is at.
        .route(
            "/kms/proof",
            get(kms_page).post(kms_proof.layer(DefaultBodyLimit::max(kms::PROOF_MAX))),
        )
        .route(
            "/assets/explorer.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route(
            "/assets/explorer.js",
            get(|| async { asset(JS, "text/javascript") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// A rendered page, or the error as a page of its own (with the API's status).
fn html(result: Result<Markup, ApiError>) -> Response {
    match result {
        Ok(m) => respond(StatusCode::OK, m),
        Err(e) => {
            let (status, message) = e.status_and_message();
            error(status, &message)
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    respond(status, layout::error_page(status.as_u16(), message))
}

fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        markup.into_string(),
    )
        .into_response()
}

async fn home(State(s): State<ApiState>) -> Response {
    html(proposals::list(&s).await)
}

async fn proposal(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    html(proposals::one(&s, &id).await)
}

#[derive(Deserialize)]
struct Offset {
    offset: Option<usize>,
}

async fn apps_list(
    State(s): State<ApiState>,
    q: Result<Query<Offset>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match q {
        Ok(Query(q)) => html(apps::list(&s, q.offset.unwrap_or(0)).await),
        Err(e) => error(e.status(), &e.body_text()),
    }
}

async fn app(State(s): State<ApiState>, Path(address): Path<String>) -> Response {
    html(apps::one(&s, &address).await)
}

async fn kms_page(State(s): State<ApiState>) -> Response {
    html(kms::page(&s, None).await)
}

#[derive(Deserialize)]
struct ProofForm {
    proof: String,
}

async fn kms_proof(
    State(s): State<ApiState>,
    form: Result<Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    match form {
        Ok(Form(f)) => html(kms::page(&s, Some(&f.proof)).await),
        // Too large (413), not a form (415), malformed (400): the rejection's own status.
        Err(e) => error(e.status(), &e.body_text()),
    }
}
