-- GET /claims?token=… (and the dashboard's per-token views) walked the whole table newest first when the token
-- has few or no claims (99 ms at 1 M claims for an unknown token): a keyset index on (token, id) answers it
-- from the index.
CREATE INDEX claims_token_id ON claims (token_contract, id);
