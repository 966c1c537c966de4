-- Covenant indexer: the chain mirror. Every table below is rewound by deleting rows whose
-- `from_block` is above the common ancestor of a reorg and re-opening rows whose `to_block` is
-- above it, in one transaction with the cursor (see docs/indexer.md).

-- What this database mirrors. Exactly one row; a start against another chain or deployment is refused.
CREATE TABLE mirror (
    id              BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    chain_id        BIGINT  NOT NULL,
    kms_registry    BYTEA   NOT NULL,
    start_block     BIGINT  NOT NULL,
    -- The last block whose logs are applied (the cursor) and its hash.
    indexed_number  BIGINT  NOT NULL,
    indexed_hash    BYTEA,
    -- The highest indexed block the chain considers final; readers use only data at or below it.
    finalized_number BIGINT NOT NULL,
    finalized_hash  BYTEA,
    -- The chain's head as last seen.
    head_number     BIGINT  NOT NULL DEFAULT 0
);

-- Blocks the indexer has seen: every block followed live, the last block of each backfilled range,
-- and every block holding an indexed log.
CREATE TABLE blocks (
    number      BIGINT PRIMARY KEY,
    hash        BYTEA  NOT NULL UNIQUE,
    parent_hash BYTEA,
    timestamp   BIGINT
);

-- Every decoded log of the mirrored contracts, in chain order. The change feed reads it.
CREATE TABLE events (
    chain_id     BIGINT NOT NULL,
    block_hash   BYTEA  NOT NULL,
    log_index    BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    tx_hash      BYTEA  NOT NULL,
    contract     BYTEA  NOT NULL,
    -- Which contract kind emitted it: kms_registry, app, domain_registry, governor, timelock, token.
    source       TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    -- JSON, not JSONB: stored as written (cheaper to insert), served as is by the change feed.
    data         JSON   NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX events_position ON events (block_number, log_index);

-- Set-like state: one row per member while it is in the set, with the block that added it and the
-- block that removed it. Sets: os_image, kms_measurement, kms_device, kms_node, root_keys, app,
-- compose_hash, device, domain, grant_log. `scope` is the app address for per-app sets, empty otherwise.
CREATE TABLE members (
    set_name   TEXT   NOT NULL,
    scope      BYTEA  NOT NULL,
    member     BYTEA  NOT NULL,
    data       JSONB  NOT NULL,
    from_block BIGINT NOT NULL,
    from_log   BIGINT NOT NULL,
    to_block   BIGINT
);
CREATE INDEX members_current ON members (set_name, scope, member) WHERE to_block IS NULL;
CREATE INDEX members_scope ON members (set_name, scope, from_block);
CREATE INDEX members_from ON members (from_block);
CREATE INDEX members_to ON members (to_block) WHERE to_block IS NOT NULL;

-- Single-valued settings (flags, owners, key generation, ...), one row per value while it held.
CREATE TABLE settings (
    scope      BYTEA  NOT NULL,
    name       TEXT   NOT NULL,
    value      JSONB  NOT NULL,
    from_block BIGINT NOT NULL,
    from_log   BIGINT NOT NULL,
    to_block   BIGINT
);
CREATE INDEX settings_current ON settings (scope, name) WHERE to_block IS NULL;
CREATE INDEX settings_from ON settings (from_block);
CREATE INDEX settings_to ON settings (to_block) WHERE to_block IS NOT NULL;

-- Governor proposals as created, with their actions decoded.
CREATE TABLE proposals (
    proposal_id  NUMERIC(78, 0) PRIMARY KEY,
    proposer     BYTEA   NOT NULL,
    actions      JSONB   NOT NULL,
    vote_start   BIGINT  NOT NULL,
    vote_end     BIGINT  NOT NULL,
    description  TEXT    NOT NULL,
    -- The timelock operation id the governor will queue the proposal under.
    timelock_id  BYTEA   NOT NULL,
    from_block   BIGINT  NOT NULL
);
CREATE INDEX proposals_from ON proposals (from_block);

-- Proposal transitions the governor announced: queued (with eta), executed, canceled.
CREATE TABLE proposal_transitions (
    proposal_id NUMERIC(78, 0) NOT NULL,
    kind        TEXT   NOT NULL,
    eta         BIGINT,
    from_block  BIGINT NOT NULL,
    from_log    BIGINT NOT NULL
);
CREATE INDEX proposal_transitions_id ON proposal_transitions (proposal_id);
CREATE INDEX proposal_transitions_from ON proposal_transitions (from_block);

CREATE TABLE votes (
    proposal_id NUMERIC(78, 0) NOT NULL,
    voter       BYTEA   NOT NULL,
    support     SMALLINT NOT NULL,
    weight      NUMERIC(78, 0) NOT NULL,
    reason      TEXT    NOT NULL,
    from_block  BIGINT  NOT NULL,
    from_log    BIGINT  NOT NULL
);
CREATE INDEX votes_proposal ON votes (proposal_id);
CREATE INDEX votes_from ON votes (from_block);

-- Timelock operations that were executed or cancelled (by id), for proposals queued there.
CREATE TABLE timelock_operations (
    operation_id BYTEA NOT NULL,
    kind         TEXT  NOT NULL,
    from_block   BIGINT NOT NULL,
    from_log     BIGINT NOT NULL
);
CREATE INDEX timelock_operations_id ON timelock_operations (operation_id);
CREATE INDEX timelock_operations_from ON timelock_operations (from_block);

-- Checkpoints the quorum depends on, keyed by block timestamp like the contracts' own:
-- kind = 'supply' (a mint or burn, signed delta) or 'quorum_numerator' (the new value).
CREATE TABLE governance_checkpoints (
    kind       TEXT   NOT NULL,
    timepoint  BIGINT NOT NULL,
    value      NUMERIC(78, 0) NOT NULL,
    from_block BIGINT NOT NULL,
    from_log   BIGINT NOT NULL
);
CREATE INDEX governance_checkpoints_kind ON governance_checkpoints (kind, timepoint);
CREATE INDEX governance_checkpoints_from ON governance_checkpoints (from_block);
