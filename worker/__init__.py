"""The worker runtime: the job entry, workspace materialisation and the Docker sandbox."""
