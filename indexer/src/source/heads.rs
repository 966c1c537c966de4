//! New-head notifications over a WebSocket subscription. The sync loop also polls on a timer,
//! so a dead or missing WebSocket only costs latency, never data.

use std::{sync::Arc, time::Duration};

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use futures::StreamExt;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;

/// Subscribes to new heads on `url` and wakes `notify` on each; reconnects with a back-off until
/// `shutdown` turns true.
pub async fn watch_heads(
    url: String,
    notify: Arc<Notify>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let session = async {
            let provider = ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect_ws(WsConnect::new(url.clone()))
                .await
                .map_err(|e| e.to_string().replace(&url, "<ws url>"))?;
            let sub = provider
                .subscribe_blocks()
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(target: "indexer::source", url = %crate::config::SecretUrl::new(url.clone()).redacted(), "subscribed to new heads");
            metrics.ws_connected.set(1);
            let mut stream = sub.into_stream();
            while let Some(header) = stream.next().await {
                tracing::trace!(target: "indexer::source", number = header.number, "new head");
                notify.notify_one();
            }
            Err::<(), String>("subscription ended".into())
        };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            result = session => {
                metrics.ws_connected.set(0);
                if let Err(e) = result {
                    tracing::warn!(target: "indexer::source", error = %e, retry_in = ?backoff, "websocket down, polling meanwhile");
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
