//! `payouts-distributor` owns paying: the key pool and nonce lanes, batching, signing, broadcasting, retry and
//! failure isolation. It never parses blocks; outcomes reach it through the store. (Distributor issue.)
