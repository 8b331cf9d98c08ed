"""Global pacing in Redis, shared by every worker process on every machine."""
