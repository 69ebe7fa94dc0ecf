DROP TABLE distributor_status;
ALTER TABLE claims DROP CONSTRAINT claims_split_group_isolated;
ALTER TABLE claims DROP COLUMN split_group;
