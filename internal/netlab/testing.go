package netlab

import (
	"os"
	"testing"
)

// NewForTest builds a lab for t and tears it down when t ends. Where a lab cannot
// be built, it fails the test under CI (CI=true: a missing prerequisite is a
// failure there) and skips it elsewhere with the reason.
func NewForTest(t testing.TB) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: network tests must run)", err)
		}
		t.Skipf("skipping network test: %v", err)
	}
	l, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("tearing down the lab: %v", err)
		}
	})
	return l
}
