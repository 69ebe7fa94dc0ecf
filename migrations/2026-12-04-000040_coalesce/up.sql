-- Coalescing (issue 22): one ft_transfer may pay several pending claims of the same token and receiver.
-- A claim may opt out (a manual send with `coalesce: false`): it is always paid by a transfer of its own.
ALTER TABLE claims ADD COLUMN may_coalesce BOOLEAN NOT NULL DEFAULT true;
-- Claims per ft_transfer action of a batch, in action order (claim_ids holds them flattened in the same
-- order); NULL: one claim per transfer (batches signed before this migration).
ALTER TABLE transactions ADD COLUMN transfer_claims INT4[];
-- The distributor looks up the other pending claims of the receivers it is about to pay (receiver first, so the
-- oldest-pending-per-token scan keeps claims_pending_by_token).
CREATE INDEX claims_pending_by_receiver ON claims (receiver_id, token_contract, id) WHERE status = 'pending';
