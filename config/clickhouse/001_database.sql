-- The database that holds the runs and payload tables.
CREATE DATABASE IF NOT EXISTS trigger_dev;
