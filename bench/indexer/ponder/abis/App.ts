export const AppAbi = [
  {
    type: "event",
    name: "ComposeHashAdded",
    anonymous: false,
    inputs: [
      { name: "composeHash", type: "bytes32", indexed: true },
      { name: "provenanceDigest", type: "bytes32", indexed: false },
      {
        name: "provenance",
        type: "tuple",
        indexed: false,
        components: [
          { name: "sourceUrl", type: "string" },
          { name: "sourceCommit", type: "string" },
          { name: "artifactDigests", type: "bytes32[]" },
        ],
      },
      { name: "effectiveAt", type: "uint64", indexed: false },
    ],
  },
] as const;
