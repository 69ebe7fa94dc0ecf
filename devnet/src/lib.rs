//! `payouts-devnet`: a local NEAR-compatible chain (real JSON-RPC, neardata blocks, real protocol rules)
//! for `payouts dev`, the tests and the benchmarks. Work in progress: see the devnet issue.
