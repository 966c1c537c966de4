//! The change feed: finalized policy events (registry, apps, domains) as server-sent events, in
//! chain order, resumable with `Last-Event-ID` or `?after=`. A `finalized` event (no id) marks
//! each advance of the finalized block, so a consumer knows how fresh its view is. New data is
//! announced by Postgres `NOTIFY` on [`covenant_mirror::FINALIZED_CHANNEL`].

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, stream};
use serde::Deserialize;
use serde_json::json;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;

use super::{ApiError, ApiState};
use covenant_mirror::{FINALIZED_CHANNEL, read};

const PAGE: i64 = 500;

/// Keeps `tx` at the mirror's finalized block: woken by `NOTIFY`, and re-read every `poll`
/// in case a notification was lost while the listener reconnected.
pub async fn watch_finalized(
    pool: PgPool,
    tx: watch::Sender<u64>,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            match PgListener::connect_with(&pool).await {
                Ok(mut l) => match l.listen(FINALIZED_CHANNEL).await {
                    Ok(()) => listener = Some(l),
                    Err(e) => tracing::warn!(target: "indexer::api", error = %e, "cannot LISTEN"),
                },
                Err(e) => {
                    tracing::debug!(target: "indexer::api", error = %e, "listener cannot connect")
                }
            }
        }
        // Re-read after (re)connecting, and on every wake-up.
        if let Ok(mut c) = pool.acquire().await
            && let Ok(Some(v)) = read::view(&mut c).await
            && v.finalized_hash.is_some()
        {
            tx.send_if_modified(|cur| {
                let changed = *cur != v.finalized;
                *cur = v.finalized;
                changed
            });
        }
        let wait = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(poll, l.recv()).await {
                    Ok(Ok(n)) => {
                        tracing::debug!(target: "indexer::api", payload = n.payload(), "finalized block announced");
                        if let Ok(num) = n.payload().parse::<u64>() {
                            tx.send_if_modified(|cur| {
                                let changed = num > *cur;
                                if changed {
                                    *cur = num;
                                }
                                changed
                            });
                        }
                        true
                    }
                    Ok(Err(_)) => false,
                    Err(_) => true,
                },
                None => {
                    tokio::time::sleep(poll).await;
                    true
                }
            }
        };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            ok = wait => if !ok { listener = None; },
        }
    }
}

/// Where the feed starts.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FeedQuery {
    /// After this position (`BLOCK-LOGINDEX`, or `BLOCK` for everything after that block);
    /// `Last-Event-ID` takes precedence.
    after: Option<String>,
}

fn parse_position(s: &str) -> Option<(u64, u64)> {
    match s.split_once('-') {
        Some((b, l)) => Some((b.parse().ok()?, l.parse().ok()?)),
        None => Some((s.parse().ok()?, u64::MAX)),
    }
}

struct Cursor {
    pool: PgPool,
    finalized: watch::Receiver<u64>,
    position: (u64, u64),
    /// The finalized block last announced to this client (`None`: nothing yet, so the first
    /// catch-up announces where the client stands).
    announced: Option<u64>,
    buffer: std::collections::VecDeque<Event>,
}

/// Finalized policy events (registry, apps, domains) as server-sent events, in chain order,
/// resumable; a `finalized` event marks each advance of the finalized block.
#[utoipa::path(get, path = "/v1/feed", tag = "mirror", params(FeedQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses((status = 200, description = "an event stream (`id: BLOCK-LOGINDEX`, `event:` the event's name, `data:` JSON)", content_type = "text/event-stream", body = String),
        (status = 400, body = super::schema::ErrorBody)))]
pub(super) async fn feed(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let requested = from_header.or(q.after);
    // The feed may start before anything is final: it then waits for the first finalized block.
    let f = {
        let mut c = s.pool.acquire().await?;
        read::view(&mut c)
            .await?
            .ok_or_else(|| ApiError::Unavailable("mirror not initialised".into()))?
            .finalized
    };
    let position = match requested {
        Some(p) => parse_position(&p).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "malformed position `{p}`: expected BLOCK or BLOCK-LOGINDEX"
            ))
        })?,
        None => (f, u64::MAX),
    };
    let cursor = Cursor {
        pool: s.pool.clone(),
        finalized: s.finalized.clone(),
        position,
        announced: None,
        buffer: Default::default(),
    };
    let events = stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.buffer.pop_front() {
                return Some((Ok(e), c));
            }
            let f = *c.finalized.borrow_and_update();
            let page = match c.pool.acquire().await {
                Ok(mut conn) => read::feed_after(&mut conn, c.position, f, PAGE).await.ok(),
                Err(_) => None,
            };
            match page {
                Some(rows) if !rows.is_empty() => {
                    tracing::debug!(target: "indexer::api", rows = rows.len(), finalized = f, "feed page");
                    for r in rows {
                        c.position = (r.block, r.log_index);
                        let data = json!({
                            "block": r.block,
                            "logIndex": r.log_index,
                            "blockHash": r.block_hash.to_string(),
                            "txHash": r.tx_hash.to_string(),
                            "contract": r.contract.to_checksum(None),
                            "source": r.source,
                            "name": r.name,
                            "data": r.data,
                        });
                        c.buffer.push_back(
                            Event::default()
                                .id(format!("{}-{}", r.block, r.log_index))
                                .event(r.name)
                                .data(data.to_string()),
                        );
                    }
                    continue;
                }
                // Caught up to f: say so, once per finalized block.
                // (never below the client's own position, e.g. a snapshot block the watch has not
                // caught up with yet).
                Some(_) if f >= c.position.0 && c.announced.is_none_or(|a| f > a) => {
                    c.announced = Some(f);
                    c.position = c.position.max((f, u64::MAX));
                    let e = Event::default()
                        .event("finalized")
                        .data(json!({ "number": f }).to_string());
                    return Some((Ok(e), c));
                }
                Some(_) => {}
                None => {
                    // Database unavailable: wait for the next announcement or a short retry.
                }
            }
            tokio::select! {
                r = c.finalized.changed() => if r.is_err() { return None; },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::parse_position;

    #[test]
    fn positions() {
        assert_eq!(parse_position("12"), Some((12, u64::MAX)));
        assert_eq!(parse_position("12-3"), Some((12, 3)));
        assert_eq!(parse_position("x"), None);
        assert_eq!(parse_position("1-"), None);
    }
}
