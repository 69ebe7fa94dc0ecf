DROP TABLE indexer_cursor;
DROP TABLE access_keys;
DROP TABLE claims;
DROP TABLE transactions;
