DROP INDEX IF EXISTS claims_confirmed_at;
