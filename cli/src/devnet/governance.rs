//! Passing a proposal on the devnet the way the DAO would — propose, vote, queue, execute through
//! the Governor and the Timelock — with the waits (voting delay and period, Timelock delay, notice
//! periods) skipped by moving anvil's clock. Only for a development chain: `evm_increaseTime`
//! exists nowhere else.

use std::time::Duration;

use alloy::{
    primitives::{Address, Bytes, U256, keccak256},
    providers::Provider,
    sol_types::SolCall,
};
use covenant_chain::governor::CovenantGovernor;

use crate::{
    context::{Call, Chain, Sender, send},
    error::{Context as _, Failure},
    gov::proposal_id,
};

/// The Governor's proposal states (OpenZeppelin's `ProposalState`).
const ACTIVE: u8 = 1;
const SUCCEEDED: u8 = 4;
const QUEUED: u8 = 5;
const EXECUTED: u8 = 7;

fn state_name(state: u8) -> &'static str {
    match state {
        0 => "pending",
        1 => "active",
        2 => "canceled",
        3 => "defeated",
        4 => "succeeded",
        5 => "queued",
        6 => "expired",
        7 => "executed",
        _ => "unknown",
    }
}

/// Moves anvil's clock `seconds` forward and mines a block at the new time.
pub(crate) async fn advance(chain: &Chain, seconds: u64) -> Result<(), Failure> {
    chain
        .provider
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (seconds,))
        .await
        .doing("moving anvil's clock (evm_increaseTime; is this a devnet?)")?;
    chain
        .provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await
        .doing("mining a block (evm_mine)")?;
    Ok(())
}

/// The latest block's timestamp.
pub(crate) async fn now(chain: &Chain) -> Result<u64, Failure> {
    Ok(chain.head().await?.timestamp)
}

/// Moves the clock until the latest block's timestamp is past `t`.
pub(crate) async fn advance_past(chain: &Chain, t: u64) -> Result<(), Failure> {
    let now = now(chain).await?;
    if now <= t {
        advance(chain, t - now + 1).await?;
    }
    Ok(())
}

/// A proposal of several calls, as the Governor takes them.
pub(crate) struct Proposal {
    pub(crate) description: String,
    pub(crate) calls: Vec<(Address, Bytes)>,
}

impl Proposal {
    fn parts(&self) -> (Vec<Address>, Vec<U256>, Vec<Bytes>) {
        (
            self.calls.iter().map(|(t, _)| *t).collect(),
            vec![U256::ZERO; self.calls.len()],
            self.calls.iter().map(|(_, c)| c.clone()).collect(),
        )
    }

    /// Its id (`hashProposal`).
    pub(crate) fn id(&self) -> U256 {
        let (targets, values, calldatas) = self.parts();
        proposal_id(
            &targets,
            &values,
            &calldatas,
            keccak256(self.description.as_bytes()),
        )
    }
}

async fn state(chain: &Chain, id: U256) -> Result<u8, Failure> {
    CovenantGovernor::new(
        chain.deployment.contracts.covenant_governor,
        &chain.provider,
    )
    .state(id)
    .call()
    .await
    .doing(&format!("reading the state of proposal {id}"))
}

/// Waits (moving the clock a second at a time, at most 60 times) until proposal `id` is in
/// state `want`.
async fn reach(chain: &Chain, id: U256, want: u8) -> Result<(), Failure> {
    for _ in 0..60 {
        let s = state(chain, id).await?;
        if s == want {
            return Ok(());
        }
        if s > want || matches!(s, 2 | 3 | 6) {
            return Err(Failure::new(format!(
                "proposal {id} is {}, not {}",
                state_name(s),
                state_name(want)
            )));
        }
        advance(chain, 1).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Failure::new(format!(
        "proposal {id} did not become {}",
        state_name(want)
    )))
}

/// Step by step, what [`pass`] did: for people watching.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(String);

/// Proposes, votes for with `sender`'s delegated votes, queues and executes `proposal`, moving
/// the clock past each wait. Returns its id.
pub(crate) async fn pass(
    chain: &Chain,
    sender: &Sender,
    proposal: &Proposal,
    progress: Progress<'_>,
) -> Result<U256, Failure> {
    let id = propose(chain, sender, proposal, progress).await?;
    carry(chain, sender, proposal, progress).await?;
    Ok(id)
}

fn governor_call(chain: &Chain, data: Vec<u8>, what: String) -> Call {
    Call {
        to: chain.deployment.contracts.covenant_governor,
        data: data.into(),
        what,
    }
}

/// Proposes `proposal`; returns its id.
pub(crate) async fn propose(
    chain: &Chain,
    sender: &Sender,
    proposal: &Proposal,
    progress: Progress<'_>,
) -> Result<U256, Failure> {
    let id = proposal.id();
    let (targets, values, calldatas) = proposal.parts();
    let call = |data: Vec<u8>, what: String| governor_call(chain, data, what);
    send(
        chain,
        sender,
        call(
            CovenantGovernor::proposeCall {
                targets: targets.clone(),
                values: values.clone(),
                calldatas: calldatas.clone(),
                description: proposal.description.clone(),
            }
            .abi_encode(),
            format!("proposal {id}"),
        ),
    )
    .await?;
    progress(format!(
        "proposed {id}: {}",
        first_line(&proposal.description)
    ));
    Ok(id)
}

/// Votes for the proposed `proposal` with `sender`'s delegated votes, queues and executes it,
/// moving the clock past each wait.
pub(crate) async fn carry(
    chain: &Chain,
    sender: &Sender,
    proposal: &Proposal,
    progress: Progress<'_>,
) -> Result<(), Failure> {
    let governor = chain.deployment.contracts.covenant_governor;
    let id = proposal.id();
    let (targets, values, calldatas) = proposal.parts();
    let description_hash = keccak256(proposal.description.as_bytes());
    let call = |data: Vec<u8>, what: String| governor_call(chain, data, what);
    reach(chain, id, ACTIVE).await?;
    send(
        chain,
        sender,
        call(
            CovenantGovernor::castVoteCall {
                proposalId: id,
                support: 1,
            }
            .abi_encode(),
            format!("a vote for proposal {id}"),
        ),
    )
    .await?;
    let deadline = CovenantGovernor::new(governor, &chain.provider)
        .proposalDeadline(id)
        .call()
        .await
        .doing("reading the proposal's deadline")?;
    progress("voted for; moving the clock past the voting period".to_owned());
    advance_past(chain, deadline.to::<u64>()).await?;
    reach(chain, id, SUCCEEDED).await?;
    send(
        chain,
        sender,
        call(
            CovenantGovernor::queueCall {
                targets: targets.clone(),
                values: values.clone(),
                calldatas: calldatas.clone(),
                descriptionHash: description_hash,
            }
            .abi_encode(),
            format!("queueing proposal {id}"),
        ),
    )
    .await?;
    reach(chain, id, QUEUED).await?;
    let eta = CovenantGovernor::new(governor, &chain.provider)
        .proposalEta(id)
        .call()
        .await
        .doing("reading the proposal's ETA")?;
    progress("queued; moving the clock past the Timelock's delay".to_owned());
    advance_past(chain, eta.to::<u64>()).await?;
    send(
        chain,
        sender,
        call(
            CovenantGovernor::executeCall {
                targets,
                values,
                calldatas,
                descriptionHash: description_hash,
            }
            .abi_encode(),
            format!("executing proposal {id}"),
        ),
    )
    .await?;
    reach(chain, id, EXECUTED).await?;
    progress(format!("executed {id}"));
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
