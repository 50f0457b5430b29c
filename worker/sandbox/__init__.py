"""The only code that talks to Docker: a stage's lines in a hardened container.

engine    DockerSandbox (create, prepare, release, wait, remove) and the reaper
request   SandboxRequest and Mount: what one container is asked to be
config    the engine's host config from a request: limits, mounts, no capabilities
driver    the shell driver inside the container: one process per line, markers
logs      the output stream, split into lines and markers
watch     the exit wait, with cancel, timeout and the SIGKILL after the grace
"""
