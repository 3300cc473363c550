package relay

import (
	"net"
	"testing"
	"time"
)

// One address cannot hold the relay's TCP connections until the file limit:
// beyond MaxConnsPerAddr a new connection is closed at once, and the ones
// before it stay open.
func TestTCPConnectionsPerAddressAreCapped(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxConnsPerAddr: 5})
	_, tcpAddr, _ := s.Addrs()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		ne, timeout := err.(net.Error)
		return err != nil && !(timeout && ne.Timeout())
	}
	for i := 1; i <= 6; i++ {
		c, err := net.Dial("tcp", tcpAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if got, want := closed(c), i > 5; got != want {
			t.Errorf("connection %d closed = %v, want %v", i, got, want)
		}
	}
}
