//! A proposal's calls in plain words: what each changes, with the provenance a voter needs to
//! check it (source, commit, artifact digests, measurements). Calls the explorer has no words
//! for are shown as decoded by the indexer (function and named arguments), never hidden.

use maud::{Markup, html};
use serde_json::Value;

use super::layout::{app_link, duration, hex, url};

/// What a call does to an app's notice period: loosening changes wait for it.
pub(super) fn loosens(action: &Value) -> bool {
    matches!(
        (
            action["contract"].as_str(),
            action["function"].as_str().unwrap_or_default()
        ),
        (
            Some("App"),
            "addComposeHash"
                | "addDevice"
                | "setAllowedTeeKinds"
                | "setAnyDevice"
                | "setRequireGpu"
                | "setRequireUpToDateTcb"
        )
    )
}

/// The app a call changes, if it is an App call.
pub(super) fn app_of(action: &Value) -> Option<&str> {
    (action["contract"].as_str() == Some("App"))
        .then(|| action["target"].as_str())
        .flatten()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn provenance(p: &Value) -> Markup {
    html! {
        dt { "Source" } dd { (url(s(&p["sourceUrl"]))) }
        dt { "Commit" } dd { code { (s(&p["sourceCommit"])) } }
        dt { "Artifact digests" }
        dd {
            @let digests = p["artifactDigests"].as_array().map(Vec::as_slice).unwrap_or_default();
            @if digests.is_empty() { "none given" }
            @else { ul class="plain" { @for d in digests { li { (hex(s(d))) } } } }
        }
    }
}

pub(super) fn tee_kind(kind: u64) -> &'static str {
    match kind {
        1 => "Intel TDX",
        2 => "AMD SEV-SNP",
        3 => "simulated TEE",
        _ => "unknown TEE kind",
    }
}

fn flag(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "on"
    } else {
        "off"
    }
}

/// One call: a heading in plain words and the details it changes.
pub(super) fn call(action: &Value, notice_period: Option<u64>) -> Markup {
    let args = &action["args"];
    let target = s(&action["target"]);
    let function = action["function"].as_str();
    let notice = || match notice_period {
        Some(0) => "immediately once executed (the app has no notice period)".to_owned(),
        Some(p) => format!("{} after execution (the app's notice period)", duration(p)),
        None => "after the app's notice period, counted from execution".to_owned(),
    };
    match (action["contract"].as_str(), function) {
        (Some("App"), Some("addComposeHash")) => html! {
            p class="call-title" { "Allow a new version of app " (app_link(target)) }
            dl {
                dt { "Compose hash" } dd { (hex(s(&args["composeHash"]))) }
                (provenance(&args["provenance"]))
                dt { "Takes effect" } dd { (notice()) }
            }
        },
        (Some("App"), Some("removeComposeHash")) => html! {
            p class="call-title" { "Revoke a version of app " (app_link(target)) }
            dl {
                dt { "Compose hash" } dd { (hex(s(&args["composeHash"]))) }
                dt { "Takes effect" } dd { "at execution: its instances lose keys and routes" }
            }
        },
        (Some("App"), Some(f @ ("addDevice" | "removeDevice"))) => html! {
            p class="call-title" {
                @if f == "addDevice" { "Allow a device for app " } @else { "Remove a device from app " }
                (app_link(target))
            }
            dl {
                dt { "Device id" } dd { (hex(s(&args["deviceId"]))) }
                dt { "Takes effect" } dd { @if f == "addDevice" { (notice()) } @else { "at execution" } }
            }
        },
        (Some("App"), Some("setNoticePeriod")) => html! {
            p class="call-title" { "Set the notice period of app " (app_link(target)) }
            dl { dt { "Notice period" } dd { (duration(args["noticePeriod"].as_u64().unwrap_or_default())) } }
        },
        (Some("KmsRegistry"), Some("addOsImage")) => html! {
            p class="call-title" { "Register an OS image" }
            dl {
                dt { "OS image hash" } dd { (hex(s(&args["osImageHash"]))) }
                (provenance(&args["provenance"]))
                dt { "Measurements" }
                dd {
                    ul class="plain" {
                        @for m in args["measurements"].as_array().map(Vec::as_slice).unwrap_or_default() {
                            li { (tee_kind(m["teeKind"].as_u64().unwrap_or_default())) ": " (hex(s(&m["registers"]))) }
                        }
                    }
                }
            }
        },
        (Some("KmsRegistry"), Some("setAllowSimulatedTee")) => html! {
            p class="call-title" { "Change a flag: simulated TEEs allowed → " strong { (flag(&args["allowed"])) } }
            p { "A simulated TEE proves nothing about hardware: only development chains turn this on." }
        },
        (Some("KmsRegistry"), Some("onboardKmsNode")) => html! {
            p class="call-title" { "Onboard a KMS node" }
            dl {
                dt { "Node" } dd { (hex(s(&args["node"]))) }
                dt { "Measurement" } dd { (hex(s(&args["mrAggregated"]))) }
                dt { "Device id" } dd { (hex(s(&args["deviceId"]))) }
            }
        },
        (Some("KmsRegistry"), Some(f @ ("addKmsMeasurement" | "removeKmsMeasurement"))) => html! {
            p class="call-title" { @if f == "addKmsMeasurement" { "Allow a KMS node measurement" } @else { "Stop allowing a KMS node measurement" } }
            dl { dt { "Measurement (mrAggregated)" } dd { (hex(s(&args["mrAggregated"]))) } }
        },
        (Some("KmsRegistry"), Some(f @ ("addKmsDevice" | "removeKmsDevice"))) => html! {
            p class="call-title" { @if f == "addKmsDevice" { "Allow a device for KMS nodes" } @else { "Stop allowing a device for KMS nodes" } }
            dl { dt { "Device id" } dd { (hex(s(&args["deviceId"]))) } }
        },
        (Some("KmsRegistry"), Some("setKmsRootKeys")) => html! {
            p class="call-title" { "Set the KMS root keys (a new root generation)" }
            dl {
                dt { "Root signer" } dd { (hex(s(&args["rootSigner"]))) }
                dt { "CA public key" } dd { (hex(s(&args["caPublicKey"]))) }
            }
        },
        (Some("KmsRegistry"), Some("setGatewayAppId")) => html! {
            p class="call-title" { "Name the gateway app: " (app_link(s(&args["appId"]))) }
        },
        (Some("KmsRegistry"), Some("removeKmsNode")) => html! {
            p class="call-title" { "Remove KMS node " (hex(s(&args["node"]))) }
        },
        _ => generic(action),
    }
}

/// A call as the indexer decoded it.
fn generic(action: &Value) -> Markup {
    let contract = action["contract"].as_str().unwrap_or("Unknown contract");
    html! {
        p class="call-title" {
            @match action["function"].as_str() {
                Some(f) => { code { (contract) "." (f) } " on " (hex(s(&action["target"]))) }
                None => { "A call to " (hex(s(&action["target"]))) " the indexer cannot decode" }
            }
        }
        @if let Some(args) = action["args"].as_object() {
            dl {
                @for (name, value) in args {
                    dt { (name) }
                    dd { code { @match value { Value::String(v) => (v), other => (other.to_string()) } } }
                }
            }
        } @else {
            p { code { (s(&action["text"])) } }
        }
        @if s(&action["value"]) != "0" && !s(&action["value"]).is_empty() {
            p { "Sends " (s(&action["value"])) " wei." }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_added_version_shows_its_provenance_and_notice() {
        let action = json!({
            "target": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "value": "0",
            "contract": "App",
            "function": "addComposeHash",
            "args": {
                "composeHash": "0x11",
                "provenance": {
                    "sourceUrl": "javascript:alert(1)",
                    "sourceCommit": "abc123",
                    "artifactDigests": ["0x22"]
                }
            }
        });
        assert!(loosens(&action));
        let html = call(&action, Some(3600)).into_string();
        for shown in [
            "Allow a new version of app",
            "0x11",
            "abc123",
            "0x22",
            "1 h 0 min after execution",
        ] {
            assert!(html.contains(shown), "{shown} missing: {html}");
        }
        assert!(!html.contains("href=\"javascript"), "{html}");
    }

    #[test]
    fn an_unknown_call_is_shown_decoded_not_hidden() {
        let action = json!({
            "target": "0x00000000000000000000000000000000000000aa",
            "value": "5",
            "contract": "KmsRegistry",
            "function": "setMinNoticePeriod",
            "args": { "minNoticePeriod_": 60 }
        });
        assert!(!loosens(&action));
        let html = call(&action, None).into_string();
        assert!(html.contains("KmsRegistry.setMinNoticePeriod"), "{html}");
        assert!(
            html.contains("minNoticePeriod_") && html.contains("60"),
            "{html}"
        );
        assert!(html.contains("Sends 5 wei"), "{html}");
    }
}
