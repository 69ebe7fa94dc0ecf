DROP INDEX IF EXISTS claims_token_id;
