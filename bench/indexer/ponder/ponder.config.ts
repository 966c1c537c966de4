// Ponder indexing Covenant's own chain (bench/indexer's `indexer-bench --ponder-project`): the
// App's ComposeHashAdded events, on the same anvil chain the Covenant indexer is measured on.
// Everything machine-specific comes from the environment indexer-bench sets.
import { createConfig } from "ponder";
import { AppAbi } from "./abis/App";

const need = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k} (run through indexer-bench)`);
  return v;
};

export default createConfig({
  database: { kind: "postgres", connectionString: need("DATABASE_URL") },
  chains: {
    anvil: { id: Number(need("BENCH_CHAIN_ID")), rpc: need("BENCH_RPC_URL") },
  },
  contracts: {
    App: {
      chain: "anvil",
      abi: AppAbi,
      address: need("BENCH_APP_ADDRESS") as `0x${string}`,
      startBlock: Number(need("BENCH_START_BLOCK")),
      endBlock: Number(need("BENCH_END_BLOCK")),
    },
  },
});
