"""What run-cron needs from the machine it runs on: the configuration file, the env file, private files,
log files and the crontab line."""
