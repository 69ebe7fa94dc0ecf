-- The payout hot path, measured with pg_stat_statements in `payouts bench --lift-gas-limit`:
--
-- * The foreign key claims.current_tx_hash -> transactions(hash) ran one referential check per claim row
--   each time a batch moved to `submitted` (100 checks per statement). The store now sets
--   current_tx_hash to `(SELECT hash FROM transactions WHERE hash = $1)`, evaluated once per statement:
--   an unknown hash yields NULL, which claims_submitted_has_tx refuses, so a claim still cannot be
--   submitted without its stored transaction. Transactions are never deleted.
-- * Signed transactions are random-looking bytes: compressing them costs CPU and saves nothing.
ALTER TABLE claims DROP CONSTRAINT claims_current_tx_hash_fkey;
ALTER TABLE transactions ALTER COLUMN signed_bytes SET STORAGE EXTERNAL;
