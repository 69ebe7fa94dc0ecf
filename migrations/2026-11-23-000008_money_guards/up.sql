-- Money guards (issue 16): the daily cap and the balance guard are checked and reserved atomically for every
-- lane of every process, and a claim that failed alone for a transient reason goes back to pending.
-- See distributor/src/guard.rs for the atomicity argument.

-- What each token has committed to send per UTC day: the sum of the amounts of the transactions signed that
-- day (the day of the signing DB transaction's now(), in UTC) that are not known to have paid nothing.
-- Reserved in the DB transaction that stores the signed batch, under the token's advisory lock; released
-- when the transaction is proven dead (bury) or its receipt failed (settle); kept when it succeeds.
CREATE TABLE daily_spend (
    token_contract TEXT NOT NULL,
    day            DATE NOT NULL,
    reserved       NUMERIC(39, 0) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (token_contract, day)
);

-- The total a transaction's ft_transfers move, and the daily_spend row it is counted in.
ALTER TABLE transactions ADD COLUMN amount NUMERIC(39, 0) CHECK (amount >= 0);
ALTER TABLE transactions ADD COLUMN spend_day DATE;
-- The balance guard counts transactions that succeeded a moment ago (a node's balance may not show them yet).
CREATE INDEX transactions_recently_final ON transactions (token_contract, finished_at) WHERE status = 'final';

-- A claim that failed alone (or with its whole batch) for a reason that can pass (a paused token, the
-- treasury's balance, a missing registration) waits until retry_at, and gives up after a bounded number of
-- such retries (the store's reconcile module).
ALTER TABLE claims ADD COLUMN retry_at TIMESTAMPTZ;
ALTER TABLE claims ADD COLUMN retry_kind TEXT
    CHECK (retry_kind IN ('paused', 'balance', 'registration', 'unknown'));
ALTER TABLE claims ADD COLUMN retries INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0);

-- Transactions stored before this migration: their totals (open ones and today's), and today's spend.
UPDATE transactions t SET amount = s.total
FROM (SELECT t2.hash, COALESCE(SUM(c.amount), 0) AS total
      FROM transactions t2 JOIN claims c ON c.id = ANY (t2.claim_ids)
      WHERE t2.status IN ('signed', 'submitted', 'included')
         OR t2.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
      GROUP BY t2.hash) s
WHERE t.hash = s.hash;
UPDATE transactions SET spend_day = (created_at AT TIME ZONE 'UTC')::date
WHERE amount IS NOT NULL
  AND status IN ('signed', 'submitted', 'included', 'final')
  AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
INSERT INTO daily_spend (token_contract, day, reserved)
SELECT token_contract, spend_day, SUM(amount) FROM transactions
WHERE spend_day IS NOT NULL GROUP BY token_contract, spend_day;
