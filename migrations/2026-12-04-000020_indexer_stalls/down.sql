DROP TABLE indexer_stalls;
