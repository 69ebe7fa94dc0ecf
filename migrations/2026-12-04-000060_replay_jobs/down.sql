DROP TABLE replay_jobs;
