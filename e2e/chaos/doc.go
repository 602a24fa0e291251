// Package chaos holds the quota's crash tests with real processes: two
// `claude-route serve` replicas on one redis-server, one SIGKILLed mid-burst
// or the store answering late for a spell, and the fake upstream counting
// what reached it. Built only with the "chaos" tag: scripts/test runs them
// in its chaos stage (go test -tags chaos ./e2e/chaos/).
package chaos
