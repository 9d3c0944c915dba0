"""What holds work back without failing it: paused jobs and message types, rate limits per type."""
