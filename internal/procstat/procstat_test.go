package procstat

import (
	"os"
	"testing"
)

func TestRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	got, err := RSS(os.Getpid())
	if err != nil || got <= 0 {
		t.Fatalf("RSS(self) = %d, %v; want a positive size", got, err)
	}
	if _, err := RSS(-1); err == nil {
		t.Fatal("RSS(-1) succeeded")
	}
}
