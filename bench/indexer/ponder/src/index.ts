import { ponder } from "ponder:registry";
import { composeHash } from "ponder:schema";

ponder.on("App:ComposeHashAdded", async ({ event, context }) => {
  await context.db.insert(composeHash).values({
    id: event.id,
    app: event.log.address,
    composeHash: event.args.composeHash,
    provenanceDigest: event.args.provenanceDigest,
    provenance: event.args.provenance,
    effectiveAt: event.args.effectiveAt,
    blockNumber: event.block.number,
    logIndex: event.log.logIndex,
  });
});
