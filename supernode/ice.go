package supernode

import (
	"net"
	"strconv"
	"time"

	"github.com/parley/parley/wire/snapi"
	"github.com/parley/parley/wire/turncred"
)

// RelayOffer describes the relays a supernode offers its users.
type RelayOffer struct {
	// Host is the address users reach this supernode's own relay at.
	Host string
	// UDP, TCP and TLS are the relay's listeners (nil when it has none of
	// that kind); UDP also answers STUN.
	UDP, TCP, TLS net.Addr
	// External are standalone relays (host:port, UDP and TCP on the same port)
	// that share Secret.
	External []string
	// Secret is the TURN-REST secret the relays share; TTL how long the
	// credentials handed out are good for new allocations.
	Secret []byte
	TTL    time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ICEServers returns a Config.ICEServers function offering the relays of o,
// each with fresh TURN-REST credentials for the user.
func (o RelayOffer) ICEServers() func(user string) []snapi.ICEServer {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return func(user string) []snapi.ICEServer {
		username, password := turncred.Credentials(o.Secret, user, o.TTL, now())
		var out []snapi.ICEServer
		add := func(h string, udp, tcp, tlsPort int) {
			var turn []string
			if udp != 0 {
				hp := net.JoinHostPort(h, strconv.Itoa(udp))
				out = append(out, snapi.ICEServer{URLs: []string{"stun:" + hp}})
				turn = append(turn, "turn:"+hp+"?transport=udp")
			}
			if tcp != 0 {
				turn = append(turn, "turn:"+net.JoinHostPort(h, strconv.Itoa(tcp))+"?transport=tcp")
			}
			if tlsPort != 0 {
				turn = append(turn, "turns:"+net.JoinHostPort(h, strconv.Itoa(tlsPort))+"?transport=tcp")
			}
			if len(turn) > 0 {
				out = append(out, snapi.ICEServer{URLs: turn, Username: username, Credential: password})
			}
		}
		if o.UDP != nil || o.TCP != nil || o.TLS != nil {
			add(o.Host, port(o.UDP), port(o.TCP), port(o.TLS))
		}
		for _, e := range o.External {
			h, p, err := net.SplitHostPort(e)
			if n, _ := strconv.Atoi(p); err == nil && n > 0 {
				add(h, n, n, 0)
			}
		}
		return out
	}
}

func port(a net.Addr) int {
	if a == nil {
		return 0
	}
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return n
}
