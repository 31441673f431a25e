// Package proctest tells tests whether a process they caused is still
// running, which kill(pid, 0) alone does not: an orphan that was killed
// stays a zombie when pid 1 (in a container, often not an init) never
// reaps it.
package proctest
