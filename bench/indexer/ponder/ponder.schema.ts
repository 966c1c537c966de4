import { onchainTable } from "ponder";

// One row per allowed compose hash with its provenance: what Covenant's mirror keeps for it.
export const composeHash = onchainTable("compose_hash", (t) => ({
  id: t.text().primaryKey(),
  app: t.hex().notNull(),
  composeHash: t.hex().notNull(),
  provenanceDigest: t.hex().notNull(),
  provenance: t.json().notNull(),
  effectiveAt: t.bigint().notNull(),
  blockNumber: t.bigint().notNull(),
  logIndex: t.integer().notNull(),
}));
