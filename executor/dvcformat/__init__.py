"""What DVC reads and writes, byte for byte, outside the pipeline files themselves.

config       .dvc/config (and its global/system/local layers): cache dir and type, remotes
remotes      a DVC remote as executor's store URL and S3 access
ignore       DVC's walk of a folder: .dvcignore rules, nested repositories
rwlock       .dvc/tmp/rwlock, as DVC takes it around a run
gitignore    the .gitignore lines DVC writes for outputs, and git's view of tracked files
lockfile     dvc.lock: read, checked against DVC's schema, written atomically in plan order
entry        a stage's lock entry, and the run-cache key and value DVC derives from it
datasources  .dvc files (dvc add, dvc import): checked and recorded as DVC does
"""
