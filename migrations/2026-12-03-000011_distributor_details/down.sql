ALTER TABLE distributor_status DROP COLUMN details;
