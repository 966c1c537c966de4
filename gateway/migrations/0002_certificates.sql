-- Certificates the gateway ordered from its ACME CA, shared by every gateway node of a
-- deployment: one node orders (under an advisory lock per name), every node serves the result.
-- The private key is sealed (AES-256-GCM) under a key only instances of the gateway app get
-- from the KMS (`GetKey("gateway/certificates")`): the database's operator cannot use it.
CREATE TABLE gateway_certificates (
    host TEXT PRIMARY KEY,
    -- The chain the CA returned (PEM), leaf first.
    chain_pem TEXT NOT NULL,
    -- The leaf's private key (PKCS#8), sealed: nonce || ciphertext || tag.
    key_sealed BYTEA NOT NULL,
    -- SHA-256 of the leaf's SubjectPublicKeyInfo.
    spki_sha256 BYTEA NOT NULL CHECK (length(spki_sha256) = 32),
    -- When the leaf expires (Unix seconds).
    not_after BIGINT NOT NULL,
    -- The ACME account the certificate was ordered under.
    account_uri TEXT NOT NULL,
    ordered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The TLS-ALPN-01 challenges of orders in progress: whichever node the CA connects to answers.
CREATE TABLE gateway_acme_challenges (
    host TEXT PRIMARY KEY,
    -- SHA-256 of the key authorization (the acmeIdentifier extension's value).
    digest BYTEA NOT NULL CHECK (length(digest) = 32),
    expires_at TIMESTAMPTZ NOT NULL
);

-- An attestation over every certificate key the gateway made, written before the key is used:
-- evidence from the gateway's TEE whose report data binds the key's SubjectPublicKeyInfo.
-- Rows are never deleted: a verifier can check any certificate the gateway ever served.
CREATE TABLE gateway_key_attestations (
    spki_sha256 BYTEA PRIMARY KEY CHECK (length(spki_sha256) = 32),
    spki BYTEA NOT NULL,
    host TEXT NOT NULL,
    -- The gateway instance that made the key.
    instance_id BYTEA NOT NULL CHECK (length(instance_id) = 20),
    -- The evidence (JSON, as the guest's GetQuote returns it).
    evidence JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX gateway_key_attestations_host ON gateway_key_attestations (host);
