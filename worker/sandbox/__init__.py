"""The only code that talks to Docker: a stage's lines in a hardened container.

engine    DockerSandbox: create, prepare, release (supervised to an outcome), remove
prepared  a created container, and a started one held at its gate
reaper    containers whose owner process (or worker container) died, removed
hostpaths a worker in a container: its folder's path on the engine's host, proved at start
owner     who started a container (host, pid, pid namespace, worker container), and if it lives
calls     Docker engine errors as one-line SandboxErrors
request   SandboxRequest and Mount: what one container is asked to be
config    the engine's host config from a request: limits, mounts, no capabilities
driver    the shell driver inside the container: one process per line, markers
logs      the output stream, split into lines and markers
watch     the exit wait, with cancel, timeout and the SIGKILL after the grace
supervise a released container to its outcome: exit awaited, output drained, status told
"""
