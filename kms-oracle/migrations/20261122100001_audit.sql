-- The kms-oracle's audit log: every decision this node made, numbered per node without gaps,
-- and the batches whose Merkle roots it committed on chain.
CREATE TABLE audit_log (
    node            BYTEA   NOT NULL,            -- the node's identity address (20 bytes)
    seq             BIGINT  NOT NULL,            -- 1, 2, 3, ... per node
    at_ms           BIGINT  NOT NULL,            -- unix milliseconds
    action          TEXT    NOT NULL,            -- keys | certificate | replicate | connection
    granted         BOOLEAN NOT NULL,
    reason          TEXT    NOT NULL,            -- empty when granted
    app_id          BYTEA,
    instance_id     BYTEA,
    compose_hash    BYTEA,
    evidence_digest BYTEA,                       -- sha256 of the client certificate (DER)
    block_number    BIGINT,                      -- the finalized block decided at
    block_hash      BYTEA,
    leaf            BYTEA   NOT NULL,            -- the canonical encoding (docs/kms.md)
    PRIMARY KEY (node, seq)
);

CREATE TABLE audit_commits (
    node        BYTEA  NOT NULL,
    from_seq    BIGINT NOT NULL,
    to_seq      BIGINT NOT NULL,
    root        BYTEA  NOT NULL,
    tx_hash     BYTEA  NOT NULL,
    PRIMARY KEY (node, from_seq),
    CHECK (to_seq >= from_seq)
);
