package netlab

import (
	"net"
	"strings"
	"testing"
)

// TestIPv6: an IPv6-only host behind a stateful firewall reaches a public
// host over IPv6 and has no IPv4; a dual-stack host reaches it over both;
// and the firewall lets nothing new in.
func TestIPv6(t *testing.T) {
	l := NewForTest(t)
	if err := l.EnableIPv6(); err != nil {
		t.Fatal(err)
	}
	srv, err := l.AddPublicHost("srv6")
	if err != nil {
		t.Fatal(err)
	}
	srv6, err := srv.AddIPv6()
	if err != nil {
		t.Fatal(err)
	}
	only, _, err := l.AddIPv6OnlyHost("v6only")
	if err != nil {
		t.Fatal(err)
	}
	dual, rd, err := l.AddNATHost("dual", Symmetric)
	if err != nil {
		t.Fatal(err)
	}
	dual6, err := rd.AddIPv6(dual)
	if err != nil {
		t.Fatal(err)
	}
	if !only.IP.Is6() || !strings.HasPrefix(dual6.String(), "fd00:") {
		t.Fatalf("addresses %s, %s", only.IP, dual6)
	}
	var ln net.Listener
	if err := inNS(srv.NS, func() (err error) { ln, err = net.Listen("tcp", ":7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	connects := func(h *Host, addr string) bool {
		out, _ := h.Run("sh", "-c", "timeout 1 bash -c 'echo > /dev/tcp/"+addr+"/7000' 2>/dev/null; echo rc=$?")
		return strings.Contains(out, "rc=0")
	}
	for _, c := range []struct {
		h    *Host
		addr string
		want bool
	}{
		{only, srv6.String(), true},
		{dual, srv6.String(), true},
		{dual, srv.IP.String(), true},
		{only, srv.IP.String(), false},
	} {
		if got := connects(c.h, c.addr); got != c.want {
			t.Errorf("%s connects to %s: %v, want %v", c.h.Name, c.addr, got, c.want)
		}
	}
	// New TCP from outside is dropped by the firewall (ping is allowed).
	if out, err := srv.Run("sh", "-c", "timeout 1 bash -c 'echo > /dev/tcp/"+only.IP.String()+"/9' 2>&1; echo rc=$?"); err != nil || !strings.Contains(out, "rc=124") {
		t.Errorf("a connection from outside did not time out at the firewall: %v %q", err, out)
	}
}
