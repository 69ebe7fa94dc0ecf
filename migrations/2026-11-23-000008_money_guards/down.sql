ALTER TABLE claims DROP COLUMN retries;
ALTER TABLE claims DROP COLUMN retry_kind;
ALTER TABLE claims DROP COLUMN retry_at;
DROP INDEX transactions_recently_final;
ALTER TABLE transactions DROP COLUMN spend_day;
ALTER TABLE transactions DROP COLUMN amount;
DROP TABLE daily_spend;
