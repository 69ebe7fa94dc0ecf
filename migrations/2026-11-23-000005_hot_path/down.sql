ALTER TABLE transactions ALTER COLUMN signed_bytes SET STORAGE EXTENDED;
ALTER TABLE claims ADD CONSTRAINT claims_current_tx_hash_fkey
    FOREIGN KEY (current_tx_hash) REFERENCES transactions (hash);
