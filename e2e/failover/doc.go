// Package failover holds the store-failover tests that run real Redis
// processes (a Sentinel setup, a Cluster with replicas) and kill them. They
// are built only with the "failover" tag: scripts/test runs them in its
// failover stage (go test -tags failover ./e2e/failover/).
package failover
