package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeConn is a connection from a given remote address.
type fakeConn struct {
	net.Conn
	remote net.Addr
	mu     sync.Mutex
	closed int
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	return nil
}
func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed > 0
}

// fakeListener hands out queued connections.
type fakeListener struct {
	ch chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-l.ch
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func from(s string) *fakeConn {
	ap := netip.MustParseAddrPort(s)
	return &fakeConn{remote: net.TCPAddrFromAddrPort(ap)}
}

func TestPerAddrCap(t *testing.T) {
	fl := &fakeListener{ch: make(chan net.Conn, 32)}
	var refused []netip.Addr
	l := Wrap(fl, Config{PerAddr: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		OnRefuse: func(a netip.Addr) { refused = append(refused, a) }})
	accept := func(c *fakeConn) net.Conn {
		t.Helper()
		fl.ch <- c
		got, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a1 := accept(from("192.0.2.1:1"))
	a2 := accept(from("192.0.2.1:2"))
	// The third from 192.0.2.1 is closed at once; Accept goes on to the next.
	third := from("192.0.2.1:3")
	fl.ch <- third
	b1 := accept(from("192.0.2.2:1"))
	if !third.isClosed() || len(refused) != 1 || refused[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("third connection from one address: closed %v, refused %v", third.isClosed(), refused)
	}
	if l.Count(netip.MustParseAddr("192.0.2.1")) != 2 || l.Count(netip.MustParseAddr("192.0.2.2")) != 1 {
		t.Errorf("counts %d %d", l.Count(netip.MustParseAddr("192.0.2.1")), l.Count(netip.MustParseAddr("192.0.2.2")))
	}
	// Closing one (twice: counted once) makes room for one.
	a1.Close()
	a1.Close()
	a3 := accept(from("192.0.2.1:4"))
	fourth := from("192.0.2.1:5")
	fl.ch <- fourth
	accept(from("192.0.2.3:1"))
	if !fourth.isClosed() {
		t.Errorf("cap not restored after a close")
	}
	// IPv6 is counted per /64; IPv4-mapped IPv6 as IPv4.
	accept(from("[2001:db8:1:2::1]:1"))
	accept(from("[2001:db8:1:2::2]:1"))
	v6 := from("[2001:db8:1:2:ffff::3]:1")
	fl.ch <- v6
	accept(from("[::ffff:192.0.2.9]:1"))
	if !v6.isClosed() {
		t.Errorf("third connection from one /64 not refused")
	}
	if l.Count(netip.MustParseAddr("192.0.2.9")) != 1 {
		t.Errorf("mapped address not counted as IPv4")
	}
	// Exempt addresses are not limited.
	for i := range 5 {
		accept(from(netip.AddrPortFrom(netip.MustParseAddr("10.1.1.1"), uint16(i+1)).String()))
	}
	a2.Close()
	a3.Close()
	b1.Close()
	if n := l.Count(netip.MustParseAddr("192.0.2.1")); n != 0 {
		t.Errorf("after closing all: count %d", n)
	}
	close(fl.ch)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed listener: %v", err)
	}
}

func TestDefaultAndRealTCP(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(inner, Config{PerAddr: 1})
	defer l.Close()
	if Wrap(inner, Config{}).perAddr != DefaultPerAddr {
		t.Errorf("zero PerAddr is not DefaultPerAddr")
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	c1, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	s1 := <-accepted
	c2, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("second connection: read %v, want EOF (closed at once)", err)
	}
	s1.Close()
	c3, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	select {
	case s3 := <-accepted:
		s3.Close()
	case <-time.After(2 * time.Second):
		t.Errorf("connection after a close not accepted")
	}
}
