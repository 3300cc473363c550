package relay

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/parley/parley/internal/addrpolicy"
	"github.com/parley/parley/wire/turncred"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// authenticate is pion's AuthHandler: it accepts TURN-REST usernames that parse,
// have not expired by s.now (less RefreshGrace for requests other than
// Allocate) and expire at most MaxCredentialTTL ahead, in this relay's realm, and returns the user name as the user ID (quotas are per user)
// with the long-term key of the expected password. pion checks the request's
// MESSAGE-INTEGRITY against that key (HMAC, compared in constant time), so a
// wrong password fails there (see onAuth). Passwords are never logged.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	grace := s.grace
	if ra.Method == stun.MethodAllocate {
		grace = 0
	}
	user, err := turncred.CheckUsername(ra.Username, s.now(), grace)
	if err == nil && ra.Realm != s.realm {
		err = fmt.Errorf("relay: check realm %q: %w", ra.Realm, ErrWrongRealm)
	}
	if err != nil {
		s.refusedAuth.Add(1)
		s.log.Debug("relay: credential refused", "client", ra.SrcAddr, "username", ra.Username, "err", err)
		return "", nil, false
	}
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, turncred.Password(s.secret, ra.Username)), true
}

// onAuth counts requests whose credential parsed but whose MESSAGE-INTEGRITY
// did not verify: a wrong password or secret.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.refusedAuth.Add(1)
	s.log.Debug("relay: wrong TURN password", "client", src, "username", username, "method", method)
}

// quota is pion's QuotaHandler: it refuses a new allocation (486 Allocation
// Quota Reached) when the user already holds MaxAllocationsPerUser.
func (s *Server) quota(user, _ string, src net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if u := s.users[user]; u != nil && s.maxAllocs > 0 && u.allocs >= s.maxAllocs {
		s.refusedQuotaStat.Add(1)
		s.log.Info("relay: allocation quota reached", "user", user, "client", src, "max", s.maxAllocs)
		return false
	}
	return true
}

// permit is pion's PermissionHandler for CreatePermission and ChannelBind:
// peers failing PeerAllowed get 403 Forbidden (ChannelBind: pion answers 401).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if ok && addrpolicy.PeerAllowed(ip, s.allow) {
		return true
	}
	s.refusedPeers.Add(1)
	s.log.Info("relay: peer refused", "client", client, "peer", ip)
	return false
}

func (s *Server) onAllocationCreated(src, dst net.Addr, _, user, _ string, relayAddr net.Addr, _ int) {
	s.log.Info("relay: allocation created", "user", user, "client", src, "listener", dst, "relay", relayAddr)
}

// onPermission keeps an allocation's set of permitted peer IPs, so that its
// relayed conn drops unsolicited packets before charging them to the user.
func (s *Server) onPermission(relayAddr net.Addr, peer net.IP, add bool) {
	ua, ok := relayAddr.(*net.UDPAddr)
	if !ok {
		return
	}
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.allocs[ua.Port]
	s.mu.Unlock()
	if c != nil {
		c.setPeer(ip.Unmap(), add)
	}
}
