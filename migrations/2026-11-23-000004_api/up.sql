-- The API's read paths.
-- Transfers per second over the last minutes: a range scan of recently confirmed claims.
CREATE INDEX claims_confirmed_at ON claims (confirmed_at) WHERE confirmed_at IS NOT NULL;
