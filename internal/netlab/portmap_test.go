package netlab

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestServePortMapping: miniupnpd on a lab router learns the router's WAN
// address by STUN and enables port forwarding, though the address is in the
// reserved benchmark range.
func TestServePortMapping(t *testing.T) {
	l := NewForTest(t)
	_, r, err := l.AddNATHost("pm", EndpointIndependent)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ServePortMapping(PortMapConfig{Dir: t.TempDir()})
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	log := p.Log()
	t.Logf("miniupnpd:\n%s", log)
	if !strings.Contains(log, "Port forwarding is now enabled") || !strings.Contains(log, "public IP address "+r.WAN.String()) {
		t.Errorf("miniupnpd did not take %s as its outside address", r.WAN)
	}
}
