-- What a distributor process reports beyond its pause and last error (issue 18): its RPC endpoints' health (URLs
-- redacted), the gas per transfer and batch size chosen per token, lanes backing off after congestion, the gas
-- price. Written with each heartbeat; GET /status shows it.
ALTER TABLE distributor_status ADD COLUMN details JSONB NOT NULL DEFAULT '{}'::jsonb;
