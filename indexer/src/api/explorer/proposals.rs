//! Proposals: the list (open and past) and one proposal decoded into plain calls, with its
//! tally, quorum, the time it can be executed and the time its changes take effect.

use std::str::FromStr;

use alloy::primitives::{Address, U256};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    calls,
    layout::{self, AsOf, Section, countdown, hex, time_at},
};
use crate::{
    api::{
        ApiError, ApiState,
        routes::{load_proposal, load_proposals},
        schema::{Proposal, ProposalDetail},
    },
    governance::ProposalState,
};
use covenant_mirror::read;

fn state_name(state: ProposalState) -> &'static str {
    match state {
        ProposalState::Pending => "Pending",
        ProposalState::Active => "Voting open",
        ProposalState::Canceled => "Canceled",
        ProposalState::Defeated => "Defeated",
        ProposalState::Succeeded => "Passed, not queued",
        ProposalState::Queued => "Queued in the Timelock",
        ProposalState::Expired => "Expired",
        ProposalState::Executed => "Executed",
    }
}

fn is_open(state: ProposalState) -> bool {
    matches!(
        state,
        ProposalState::Pending
            | ProposalState::Active
            | ProposalState::Succeeded
            | ProposalState::Queued
    )
}

/// The next moment that matters for a proposal, in words, counted down.
fn next_moment(p: &Proposal, now: u64) -> Markup {
    match p.state {
        ProposalState::Pending => html! { "voting opens " (countdown(p.vote_start, now)) },
        ProposalState::Active => html! { "voting ends " (countdown(p.vote_end, now)) },
        ProposalState::Succeeded => html! { "may be queued now" },
        ProposalState::Queued => match p.eta {
            Some(eta) => html! { "executable " (countdown(eta, now)) },
            None => html! { "queued" },
        },
        _ => html! {},
    }
}

fn title_of(p: &Proposal) -> &str {
    let first = p.description.lines().next().unwrap_or_default().trim();
    let first = first.trim_start_matches('#').trim();
    if first.is_empty() {
        "(no description)"
    } else {
        first
    }
}

/// Whole tokens with up to 4 decimals (the token has 18), thousands separated.
pub(super) fn votes(weight: &str) -> String {
    let Ok(w) = U256::from_str(weight) else {
        return weight.to_owned();
    };
    let unit = U256::from(10u64).pow(U256::from(18u64));
    let whole = (w / unit).to_string();
    let frac = (w % unit) / U256::from(10u64).pow(U256::from(14u64));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_zero() {
        grouped
    } else {
        let f = format!("{:04}", frac.to::<u64>());
        format!("{grouped}.{}", f.trim_end_matches('0'))
    }
}

/// `/`: open proposals first, then past ones, newest first.
pub(super) async fn list(s: &ApiState) -> Result<Markup, ApiError> {
    let all = load_proposals(s).await?;
    let now = all.timestamp;
    let (open, past): (Vec<&Proposal>, Vec<&Proposal>) =
        all.proposals.iter().partition(|p| is_open(p.state));
    let table = |caption: &str, rows: &[&Proposal], empty: &str| {
        html! {
            @if rows.is_empty() {
                p { (empty) }
            } @else {
                table {
                    caption { (caption) }
                    thead { tr { th scope="col" { "Proposal" } th scope="col" { "State" } th scope="col" { "Next" } th scope="col" { "Calls" } } }
                    tbody {
                        @for p in rows {
                            tr data-proposal=(p.id) {
                                th scope="row" { a href={ "/proposals/" (p.id) } { (title_of(p)) } }
                                td { span class={ "state state-" (format!("{:?}", p.state).to_lowercase()) } { (state_name(p.state)) } }
                                td { (next_moment(p, now)) }
                                td { (p.actions.as_array().map_or(0, Vec::len)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        section aria-labelledby="open" id="open-proposals" data-live {
            h2 id="open" { "Open proposals" }
            (table("Proposals being voted on or waiting to be executed", &open, "No proposal is open."))
        }
        section aria-labelledby="past" id="past-proposals" data-live {
            h2 id="past" { "Past proposals" }
            (table("Executed, defeated and canceled proposals", &past, "None yet."))
        }
    };
    Ok(layout::page(
        Section::Proposals,
        "Proposals",
        &AsOf {
            block: &all.block,
            timestamp: now,
        },
        &["/v1/proposals"],
        body,
    ))
}

/// When each call of an executed or pending proposal takes (or took) effect.
struct Effect {
    /// The app's notice period (for App calls).
    notice_period: Option<u64>,
    /// For an executed `addComposeHash`: when the version became (or becomes) allowed.
    effective_at: Option<u64>,
}

async fn effects(s: &ApiState, d: &ProposalDetail) -> Result<Vec<Effect>, ApiError> {
    let mut c = s.pool.acquire().await?;
    let f = d.block.number;
    let mut out = Vec::new();
    for action in d
        .proposal
        .actions
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let app = calls::app_of(action).and_then(|a| Address::from_str(a).ok());
        let notice_period = match app {
            Some(app) => read::settings_at(&mut c, app.as_slice(), f)
                .await?
                .get("notice_period")
                .and_then(Value::as_u64),
            None => None,
        };
        let effective_at = match (app, action["function"].as_str()) {
            (Some(app), Some("addComposeHash")) if d.proposal.state == ProposalState::Executed => {
                let hash = action["args"]["composeHash"]
                    .as_str()
                    .and_then(|h| alloy::primitives::B256::from_str(h).ok());
                match hash {
                    Some(h) => read::scoped_member_at(
                        &mut c,
                        "compose_hash",
                        app.as_slice(),
                        h.as_slice(),
                        f,
                    )
                    .await?
                    .and_then(|m| m.data["effectiveAt"].as_u64()),
                    None => None,
                }
            }
            _ => None,
        };
        out.push(Effect {
            notice_period,
            effective_at,
        });
    }
    Ok(out)
}

/// `/proposals/{id}`.
pub(super) async fn one(s: &ApiState, id: &str) -> Result<Markup, ApiError> {
    let d = load_proposal(s, id).await?;
    let effects = effects(s, &d).await?;
    let p = &d.proposal;
    let now = d.timestamp;
    let actions = p.actions.as_array().map(Vec::as_slice).unwrap_or_default();
    let quorum = U256::from_str(&p.quorum).unwrap_or_default();
    let counted = U256::from_str(&p.tally.in_favour)
        .unwrap_or_default()
        .saturating_add(U256::from_str(&p.tally.abstain).unwrap_or_default());
    let loosening = actions.iter().any(calls::loosens);
    let body = html! {
        section aria-labelledby="summary" id="summary-section" data-live {
            h2 id="summary" { "Where it stands" }
            dl class="facts" {
                dt { "State" }
                dd { span class={ "state state-" (format!("{:?}", p.state).to_lowercase()) } data-state=(format!("{:?}", p.state).to_lowercase()) { (state_name(p.state)) } }
                dt { "Proposed by" } dd { (hex(&p.proposer)) " at block " (p.created_block) }
                dt { "Voting opens" } dd { (time_at(p.vote_start)) }
                dt { "Voting ends" }
                dd {
                    (time_at(p.vote_end))
                    @if matches!(p.state, ProposalState::Pending | ProposalState::Active) { " — " (countdown(p.vote_end, now)) }
                }
                dt { "Executable from" }
                dd {
                    @match p.eta {
                        Some(eta) => {
                            (time_at(eta))
                            @if p.state == ProposalState::Queued { " — " (countdown(eta, now)) }
                        }
                        None => { "once passed and queued, after the Timelock's delay" }
                    }
                }
                @if loosening {
                    dt { "Takes effect" }
                    dd {
                        @if p.state == ProposalState::Executed {
                            "see each call below"
                        } @else if let Some(eta) = p.eta {
                            "each app's notice period after execution: at the earliest "
                            @let earliest = eta + effects.iter().filter_map(|e| e.notice_period).max().unwrap_or(0);
                            (time_at(earliest)) " — " (countdown(earliest, now))
                        } @else {
                            "each app's notice period after execution"
                        }
                    }
                }
                dt { "Timelock operation" } dd { (hex(&p.timelock_operation_id)) }
            }
        }
        section aria-labelledby="calls" {
            h2 id="calls" { "What it changes" }
            @if actions.is_empty() { p { "No calls." } }
            ol class="calls" {
                @for (action, effect) in actions.iter().zip(&effects) {
                    li class="call" {
                        (calls::call(action, effect.notice_period))
                        @if let Some(at) = effect.effective_at {
                            p class="effect" {
                                @if at > now { "Pending: takes effect " (time_at(at)) " — " (countdown(at, now)) }
                                @else { "In effect since " (time_at(at)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="votes" id="votes-section" data-live {
            h2 id="votes" { "Votes" }
            div id="tally" aria-live="polite" {
                table class="tally" {
                    caption { "Tally at the finalized block" }
                    tbody {
                        tr { th scope="row" { "For" } td data-tally="for" { (votes(&p.tally.in_favour)) } }
                        tr { th scope="row" { "Against" } td data-tally="against" { (votes(&p.tally.against)) } }
                        tr { th scope="row" { "Abstain" } td data-tally="abstain" { (votes(&p.tally.abstain)) } }
                        tr { th scope="row" { "Quorum (for + abstain)" } td data-tally="quorum" { (votes(&p.quorum)) @if counted >= quorum && !quorum.is_zero() { " — reached" } @else { " — not reached" } } }
                    }
                }
            }
            @if d.votes.is_empty() {
                p { "No votes yet." }
            } @else {
                table {
                    caption { "Votes cast, in order" }
                    thead { tr { th scope="col" { "Voter" } th scope="col" { "Vote" } th scope="col" { "Weight" } th scope="col" { "Reason" } th scope="col" { "Block" } } }
                    tbody {
                        @for v in &d.votes {
                            tr { td { (hex(&v.voter)) } td { (v.support) } td { (votes(&v.weight)) } td { (v.reason) } td { (v.block) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="description" {
            h2 id="description" { "Description, as proposed" }
            pre class="description" { (p.description) }
        }
    };
    let json = format!("/v1/proposals/{}", p.id);
    Ok(layout::page(
        Section::Proposals,
        &format!("Proposal: {}", title_of(p)),
        &AsOf {
            block: &d.block,
            timestamp: now,
        },
        &[json.as_str()],
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::votes;

    #[test]
    fn vote_weights_are_whole_tokens() {
        assert_eq!(votes("0"), "0");
        assert_eq!(votes("1000000000000000000"), "1");
        assert_eq!(votes("1000000000000000000000000"), "1,000,000");
        assert_eq!(votes("1500000000000000000"), "1.5");
        assert_eq!(votes("123456789000000000000000"), "123,456.789");
        assert_eq!(votes("not a number"), "not a number");
    }
}
