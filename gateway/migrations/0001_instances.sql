-- Instances registered with the gateway by evidence. A row is written only after the
-- instance's RA-TLS evidence verified and the chain allowed its boot at a finalized block, so
-- anonymous traffic never writes here. Every gateway node of a deployment shares this table.
CREATE TABLE gateway_instances (
    instance_id BYTEA PRIMARY KEY CHECK (length(instance_id) = 20),
    app BYTEA NOT NULL CHECK (length(app) = 20),
    -- The RA-TLS certificate (DER) the instance registered with: its evidence is verified
    -- again whenever a node loads the row, and its key is the one the hop must meet.
    certificate BYTEA NOT NULL,
    -- The app-compose document (its hash is the evidence's compose hash).
    compose BYTEA NOT NULL,
    -- Where the instance's ingress listens (host:port).
    ingress TEXT NOT NULL,
    -- The app's key generation the instance booted with.
    key_generation BIGINT NOT NULL CHECK (key_generation > 0),
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX gateway_instances_app ON gateway_instances (app);
