//! Apps: the list, and one app's allowed and pending versions with provenance, its history
//! (each change with the proposal, or the owner, that made it), its domains and settings.

use alloy::primitives::Address;
use covenant_mirror::read;
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{self, AsOf, Section, app_link, countdown, duration, hex, time_at, url};
use crate::api::{
    ApiError, ApiState,
    routes::{Page, load_app, load_apps},
    schema::Member,
    serving::load_serving,
};

fn field<'a>(m: &'a Member, name: &str) -> &'a str {
    m.fields
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `/apps`.
pub(super) async fn list(s: &ApiState, offset: usize) -> Result<Markup, ApiError> {
    let apps = load_apps(
        s,
        Page {
            offset: Some(offset),
            limit: Some(100),
        },
    )
    .await?;
    let timestamp = super::timestamp_at(s, apps.block.number).await?;
    let shown = apps.apps.len();
    let body = html! {
        p { (apps.total) " apps are registered. An app is a contract: governance (or its owner) decides which versions of its code may get its keys." }
        @if apps.apps.is_empty() {
            p { "None on this page." }
        } @else {
            table {
                caption { "Registered apps, in the order they were created (" (offset + 1) "–" (offset + shown) " of " (apps.total) ")" }
                thead { tr { th scope="col" { "App" } th scope="col" { "Kind" } th scope="col" { "Owner" } th scope="col" { "Created at block" } } }
                tbody {
                    @for a in &apps.apps {
                        tr {
                            th scope="row" { (app_link(field(&a.member, "address"))) }
                            td { (field(&a.member, "kind")) }
                            td {
                                @let owner = a.settings.get("owner").and_then(Value::as_str).unwrap_or(field(&a.member, "owner"));
                                (hex(owner))
                            }
                            td { (a.member.added_block) }
                        }
                    }
                }
            }
        }
        nav aria-label="Pages of apps" {
            @if offset > 0 { a href={ "/apps?offset=" (offset.saturating_sub(100)) } rel="prev" { "Previous page" } " " }
            @if offset + shown < apps.total { a href={ "/apps?offset=" (offset + 100) } rel="next" { "Next page" } }
        }
    };
    Ok(layout::page(
        Section::Apps,
        "Apps",
        &AsOf {
            block: &apps.block,
            timestamp,
        },
        &["/v1/apps"],
        body,
    ))
}

/// Who made a change to an app's versions: the proposal executed in the same transaction, or
/// else the app's owner (only its owner may call it).
async fn made_by(
    s: &ApiState,
    app: Address,
    event: &str,
    hash: &str,
    block: u64,
) -> Result<Markup, ApiError> {
    let Ok(hash) = hash.parse::<alloy::primitives::B256>() else {
        return Ok(html! { "block " (block) });
    };
    let mut c = s.pool.acquire().await?;
    let row = read::compose_hash_change(&mut c, app, event, hash, block).await?;
    Ok(match row {
        Some((tx, proposal)) => match proposal {
            Some(id) => {
                html! { "proposal " a href={ "/proposals/" (id) } data-proposal=(id) { (short_id(&id)) } }
            }
            None => {
                html! { "the app's owner (transaction " (hex(&format!("0x{}", ::hex::encode(tx)))) ")" }
            }
        },
        None => html! { "block " (block) },
    })
}

/// A proposal id is a 256-bit number: its first and last digits name it well enough in text.
fn short_id(id: &str) -> String {
    if id.len() > 14 {
        format!("{}…{}", &id[..6], &id[id.len() - 6..])
    } else {
        id.to_owned()
    }
}

fn provenance(m: &Member) -> Markup {
    let p = m.fields.get("provenance").cloned().unwrap_or(Value::Null);
    let digests = p["artifactDigests"].as_array().cloned().unwrap_or_default();
    html! {
        dl class="provenance" {
            dt { "Source" } dd { (url(p["sourceUrl"].as_str().unwrap_or_default())) }
            dt { "Commit" } dd { code { (p["sourceCommit"].as_str().unwrap_or_default()) } }
            dt { "Artifact digests" }
            dd {
                @if digests.is_empty() { "none given" }
                @else { ul class="plain" { @for d in &digests { li { (hex(d.as_str().unwrap_or_default())) } } } }
            }
        }
    }
}

fn effective(m: &Member) -> u64 {
    m.fields
        .get("effectiveAt")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Versions with their provenance: in effect since, or taking effect (counted down).
fn versions(members: &[&Member], now: u64) -> Markup {
    html! {
        ul class="versions" {
            @for m in members {
                li data-compose-hash=(field(m, "composeHash")) {
                    p {
                        "Compose hash " (hex(field(m, "composeHash")))
                        @if effective(m) > now { " takes effect " (time_at(effective(m))) " — " (countdown(effective(m), now)) }
                        @else { ", in effect since " (time_at(effective(m))) }
                    }
                    (provenance(m))
                }
            }
        }
    }
}

/// `/apps/{address}`.
pub(super) async fn one(s: &ApiState, address: &str) -> Result<Markup, ApiError> {
    let d = load_app(s, address).await?;
    let app: Address = d
        .address
        .parse()
        .map_err(|_| ApiError::Internal("unparsable app address".into()))?;
    let now = super::timestamp_at(s, d.block.number).await?;
    let serving = load_serving(s, &d, now).await?;
    let (allowed, pending): (Vec<&Member>, Vec<&Member>) =
        d.compose_hashes.iter().partition(|m| effective(m) <= now);
    let mut history = Vec::new();
    for m in &d.compose_hash_history {
        let hash = field(m, "composeHash");
        let added = made_by(s, app, "ComposeHashAdded", hash, m.added_block).await?;
        let removed = match m.removed_block {
            Some(b) => Some((b, made_by(s, app, "ComposeHashRemoved", hash, b).await?)),
            None => None,
        };
        history.push((m, added, removed));
    }
    let owner = d
        .settings
        .get("owner")
        .and_then(Value::as_str)
        .unwrap_or(field(&d.registration, "owner"))
        .to_owned();
    let notice = d.settings.get("noticePeriod").and_then(Value::as_u64);
    let frozen = d.settings.get("frozen").and_then(Value::as_bool) == Some(true);
    let body = html! {
        section aria-labelledby="about" {
            h2 id="about" { "About" }
            dl class="facts" {
                dt { "Address (app id)" } dd { (hex(&d.address)) }
                dt { "Registered" } dd { @if d.registered { "yes, since block " (d.registration.added_block) } @else { "no: deregistered" } }
                dt { "Owner" } dd { (hex(&owner)) }
                dt { "Notice period" } dd { @match notice { Some(n) => (duration(n)), None => "not set" } " — new versions wait this long before they can get keys" }
                @if frozen { dt { "Frozen" } dd { "yes: its versions can no longer be changed" } }
            }
        }
        section aria-labelledby="allowed" id="allowed-section" data-live {
            h2 id="allowed" { "Allowed versions" }
            @if allowed.is_empty() { p { "No version may get keys now." } }
            @else {
                (versions(&allowed, now))
            }
        }
        section aria-labelledby="pending" id="pending-section" data-live {
            h2 id="pending" { "Pending versions" }
            @if pending.is_empty() { p { "No version is waiting for its notice period." } }
            @else {
                (versions(&pending, now))
            }
        }
        section aria-labelledby="history" id="history-section" data-live {
            h2 id="history" { "History of versions" }
            @if history.is_empty() { p { "No version was ever added." } }
            @else {
                table {
                    caption { "Every compose hash added, by whom, and when it was removed" }
                    thead { tr { th scope="col" { "Compose hash" } th scope="col" { "Added" } th scope="col" { "Removed" } } }
                    tbody {
                        @for (m, added, removed) in &history {
                            tr data-compose-hash=(field(m, "composeHash")) {
                                th scope="row" { (hex(field(m, "composeHash"))) }
                                td { "block " (m.added_block) " by " (added) }
                                td {
                                    @match removed {
                                        Some((b, by)) => { "block " (b) " by " (by) }
                                        None => { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="devices" {
            h2 id="devices" { "Devices" }
            @if d.settings.get("anyDevice").and_then(Value::as_bool) == Some(true) { p { "Any device may run it." } }
            @if d.devices.is_empty() { p { "No device is listed." } }
            @else { ul class="plain" { @for m in &d.devices { li { (hex(field(m, "deviceId"))) } } } }
        }
        section aria-labelledby="domains" {
            h2 id="domains" { "Domains" }
            @if serving.domains.is_empty() { p { "No domain is claimed for it." } }
            @else {
                p { "A claim counts only when the domain's DNS names this app in the TXT record " code { "_covenant.<domain>" } " and names no other app that claims it (the gateway's rule; check it yourself with " code { "covenant verify https://<domain>" } ")." }
                table {
                    caption { "Claimed domains and what DNS says of each" }
                    thead { tr { th scope="col" { "Domain" } th scope="col" { "DNS" } th scope="col" { "Detail" } } }
                    tbody {
                        @for p in &serving.domains {
                            tr data-domain=(p.domain) data-dns=(p.dns) {
                                th scope="row" { code { (p.domain) } }
                                td { span class={ "state " (dns_class(p.dns)) } { (dns_word(p.dns)) } }
                                td { (p.detail) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="routed" id="routed-section" data-live {
            h2 id="routed" { "Instances routed by the gateway" }
            @match &serving.gateway {
                None => { p { "This explorer is not told of a gateway (the indexer's " code { "--gateway-api-url" } ")." } }
                Some(g) => {
                    p { "As reported by the gateway at " code { (g.url) } @if let Some(b) = g.decided_at { ", decided at finalized block " (b) } ". Each instance's boot is judged again here by the registry's rules at block " (d.block.number) "." }
                    @if let Some(e) = &g.error { p role="alert" { "The gateway's routing table could not be read: " (e) } }
                    @else if g.instances.is_empty() { p { "The gateway routes no instance to this app." } }
                    @else {
                        table {
                            caption { "Routed instances and whether the chain allows each" }
                            thead { tr { th scope="col" { "Instance" } th scope="col" { "Version and platform" } th scope="col" { "Served as" } th scope="col" { "Allowed on chain" } } }
                            tbody {
                                @for i in &g.instances {
                                    tr data-instance=(i.instance_id) data-allowed=(match i.allowed { Some(true) => "yes", Some(false) => "no", None => "unknown" }) {
                                        th scope="row" { (hex(&i.instance_id)) }
                                        td { "compose hash " (hex(&i.compose_hash)) br; (super::calls::tee_kind(u64::from(i.tee_kind))) ", OS image " (hex(&i.os_image_hash)) }
                                        td { ul class="plain" { @for h in &i.hosts { li { code { (h) } } } } }
                                        td {
                                            @match i.allowed {
                                                Some(true) => { span class="state state-good" { "allowed" } }
                                                Some(false) => { span class="state state-bad" { "not allowed" } " — " (i.reason) }
                                                None => { span class="state state-unsure" { "undecided" } " — " (i.reason) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="settings" {
            h2 id="settings" { "Settings as recorded on chain" }
            dl class="settings" {
                @for (k, v) in &d.settings {
                    dt { (k) } dd { code { @match v { Value::String(s) => (s), other => (other.to_string()) } } }
                }
            }
        }
    };
    let json = format!("/v1/apps/{}", d.address);
    let serving_json = format!("/v1/apps/{}/serving", d.address);
    Ok(layout::page(
        Section::Apps,
        &format!("App {}", d.address),
        &AsOf {
            block: &d.block,
            timestamp: now,
        },
        &[json.as_str(), serving_json.as_str()],
        body,
    ))
}

fn dns_class(dns: &str) -> &'static str {
    match dns {
        "proven" => "state-good",
        "notNamed" | "ambiguous" => "state-bad",
        "unknown" => "state-unsure",
        _ => "",
    }
}

fn dns_word(dns: &str) -> &'static str {
    match dns {
        "proven" => "proven",
        "notNamed" => "not named",
        "ambiguous" => "ambiguous",
        "unknown" => "no answer",
        _ => "not checked",
    }
}
