# Generated: flush what the databases script wrote with fsync off to disk before the server restarts.
sync
