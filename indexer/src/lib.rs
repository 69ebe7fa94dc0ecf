//! `payouts-indexer` owns the chain-to-database path: the near-lake-framework stream, event rules, claim rows,
//! outcome reconciliation, the cursor and replay. It never signs transactions. (Indexer issue.)
