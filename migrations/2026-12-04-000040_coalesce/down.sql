DROP INDEX IF EXISTS claims_pending_by_receiver;
ALTER TABLE transactions DROP COLUMN transfer_claims;
ALTER TABLE claims DROP COLUMN may_coalesce;
