package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a tiny UDP tool inside a namespace:
// NETLAB_HELPER=echo ADDR answers every datagram with its source address;
// NETLAB_HELPER=ask ADDR sends one datagram and prints the answer.
func TestMain(m *testing.M) {
	switch os.Getenv("NETLAB_HELPER") {
	case "echo":
		c, err := net.ListenPacket("udp4", os.Getenv("NETLAB_ADDR"))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				os.Exit(1)
			}
			c.WriteTo([]byte(from.String()), from)
		}
	case "ask":
		c, err := net.Dial("udp4", os.Getenv("NETLAB_ADDR"))
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		buf := make([]byte, 1500)
		for i := 0; i < 20; i++ {
			c.Write([]byte("who am i"))
			c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				fmt.Print(string(buf[:n]))
				os.Exit(0)
			}
		}
		fmt.Print("no answer")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func helper(ctx context.Context, h *Host, mode, addr string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := h.Command(ctx, self)
	cmd.Env = append(os.Environ(), "NETLAB_HELPER="+mode, "NETLAB_ADDR="+addr)
	return cmd
}

// TestTopology sends UDP across the lab: a public host sees a NATed host as its
// router's WAN address; a firewall that blocks UDP lets none through; and Close
// leaves nothing behind.
func TestTopology(t *testing.T) {
	l := NewForTest(t)
	srv, err := l.AddPublicHost("srv")
	if err != nil {
		t.Fatal(err)
	}
	a, ra, err := l.AddNATHost("a", EndpointIndependent)
	if err != nil {
		t.Fatal(err)
	}
	b, rb, err := l.AddNATHost("b", Symmetric)
	if err != nil {
		t.Fatal(err)
	}
	c, rc, err := l.AddNATHost("c", EndpointIndependent)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.BlockUDP(443); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := srv.IP.String() + ":4000"
	echo := helper(ctx, srv, "echo", addr)
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()

	tests := []struct {
		host   *Host
		wantIP string // "" = no answer expected
	}{
		{a, ra.WAN.String()},
		{b, rb.WAN.String()},
		{c, ""},
	}
	for _, tt := range tests {
		out, err := helper(ctx, tt.host, "ask", addr).Output()
		got := string(out)
		if tt.wantIP == "" {
			if err == nil {
				t.Errorf("%s behind a UDP-blocking firewall got an answer: %q", tt.host.Name, got)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(got, tt.wantIP+":") {
			t.Errorf("%s seen as %q (%v), want its router's %s", tt.host.Name, got, err, tt.wantIP)
		}
	}

	ns := l.prefix
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	list, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(list), ns+"-") {
		t.Fatalf("namespaces left after Close:\n%s", list)
	}
}

func TestLossDropsPackets(t *testing.T) {
	l := NewForTest(t)
	_, r, err := l.AddNATHost("a", EndpointIndependent)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Loss(50); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", r.NS, "nft", "list", "table", "inet", "netlab").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "numgen random mod 100 < 50") {
		t.Fatalf("loss rule not installed: %s %v", out, err)
	}
}

// TestDelay: a distant host's packets take the forwarder's delay each way, and
// arrive intact.
func TestDelay(t *testing.T) {
	l := NewForTest(t)
	srv, err := l.AddPublicHost("srv")
	must(t, err)
	near, err := l.AddPublicHost("near")
	must(t, err)
	far, err := l.AddDistantHost("far", 100*time.Millisecond)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := srv.IP.String() + ":4000"
	echo := helper(ctx, srv, "echo", addr)
	must(t, echo.Start())
	defer func() { echo.Process.Kill(); echo.Wait() }()
	rtt := func(h *Host) time.Duration {
		// The first ask also warms up ARP across the delay; time the second.
		helper(ctx, h, "ask", addr).Run()
		start := time.Now()
		out, err := helper(ctx, h, "ask", addr).Output()
		d := time.Since(start)
		if err != nil || !strings.HasPrefix(string(out), h.IP.String()+":") {
			t.Fatalf("%s: answer %q, %v", h.Name, out, err)
		}
		return d
	}
	dn, df := rtt(near), rtt(far)
	t.Logf("round trip (with process start): near %v, far %v", dn.Round(time.Millisecond), df.Round(time.Millisecond))
	if df < 200*time.Millisecond || df > dn+400*time.Millisecond {
		t.Errorf("far host round trip %v, want 200 ms more than near's %v", df, dn)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTCPInNamespaces: a listener made with ListenTCPIn lives on its lab
// host, and Host.DialContext reaches it from another host; from this
// process's own namespace the lab address is out of reach.
func TestTCPInNamespaces(t *testing.T) {
	lab := NewForTest(t)
	srv, err := lab.AddPublicHost("srv")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := lab.AddPublicHost("cli")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenTCPIn(srv.NS, "tcp4", srv.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(c.RemoteAddr().String()))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cli.DialContext(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if got, want := string(buf[:n]), cli.IP.String()+":"; !strings.HasPrefix(got, want) {
		t.Errorf("the server saw %q, want %s…", got, want)
	}
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	if c, err := d.Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("reached %s from outside the lab", ln.Addr())
	}
}
