package jobs_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs this package's tests four at a time whatever the number
// of CPUs (go test's default is GOMAXPROCS): they spend their time waiting
// for release times, timers and the fake's pacing, not computing, and
// each needs only a few PostgreSQL connections.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("4")
	}
	os.Exit(m.Run())
}
