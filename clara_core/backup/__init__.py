"""Backups of Clara's database: ``python discord_bot.py backup [run|list|restore]``.

- ``names``: what a backup is called and how old it is (the time is in the name).
- ``stores``: where backups live: a directory (BACKUP_DIR) or an S3 bucket.
- ``pgtools``: pg_dump / pg_restore as subprocesses, the password in a 0600 passfile.
- ``service``: run (respawn protection, retention, retries), list, restore.
- ``cli``: the subcommand's parser (light: built on every invocation) and runner.
"""
