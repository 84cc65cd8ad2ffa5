// Package chaos is presave's reliability suite (`make chaos`; also run by
// `make test` at a small size). Each scenario runs the real binaries —
// the fake provider, the API and workers — as separate processes against
// real PostgreSQL and Redis, breaks something while a release drains
// (a worker SIGKILLed, Redis flushed or restarted, PostgreSQL crashed and
// restarted, provider faults, grants revoked, the release moved), and
// checks the end state on the fake and in the database: nothing lost,
// nothing duplicated, no token left.
//
// CHAOS_FANS sets the fans per scenario (default 60).
package chaos
