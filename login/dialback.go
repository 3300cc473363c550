package login

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/parley/parley/internal/addrpolicy"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
)

// dialFailure is why a dial-back did not prove the key, as the HTTP answer.
type dialFailure struct {
	status     int
	err        error // sentinel: ErrDialBack, ErrDialBackDenied, ErrDialBackLimited
	msg        string
	retryAfter time.Duration // for ErrDialBackLimited
}

// dialBack checks that addr (a canonical ws:// or wss:// URL) answers
// GET /v1/identify with key, for a heartbeat from client address src. It
// returns nil on success. The target must be an IP literal, or a name whose
// every address, that the dial-back tries, passes addrpolicy.PeerAllowed with
// Config.DialBackAllow; the connection goes to those checked IPs only.
func (s *Server) dialBack(ctx context.Context, src, addr string, key ed25519.PublicKey) *dialFailure {
	if wait := s.dialLim.beginAddr(src, s.now()); wait > 0 {
		secs := retrySeconds(wait)
		s.log.Warn("dial-back rate limited", "addr", addr, "from", src, "retry_after_s", secs)
		return &dialFailure{
			status:     http.StatusTooManyRequests,
			err:        loginapi.ErrDialBackLimited,
			msg:        fmt.Sprintf("%v from this address, try again in %d s", loginapi.ErrDialBackLimited, secs),
			retryAfter: wait,
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialBackTimeout)
	defer cancel()
	fail := func(reason string) *dialFailure {
		return &dialFailure{status: http.StatusUnprocessableEntity, err: loginapi.ErrDialBack,
			msg: fmt.Sprintf("dial-back to %s: %s", addr, reason)}
	}
	hostport, _, err := nodeid.HostPort(addr)
	if err != nil {
		return fail("not a dialable URL")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fail("not a dialable URL")
	}
	ips, err := s.resolve(ctx, host)
	if err != nil {
		return fail(err.Error())
	}
	for _, ip := range ips {
		if !addrpolicy.PeerAllowed(ip, s.cfg.DialBackAllow) {
			what := addr
			if ip.String() != host {
				what = fmt.Sprintf("%s (%s resolves to %s)", addr, host, ip)
			}
			return &dialFailure{status: http.StatusForbidden, err: loginapi.ErrDialBackDenied,
				msg: fmt.Sprintf("%v: %s is a loopback, private or special-purpose address; "+
					"the login server's DialBackAllow can admit lab ranges", loginapi.ErrDialBackDenied, what)}
		}
	}
	select {
	case s.dialSem <- struct{}{}:
		defer func() { <-s.dialSem }()
	case <-ctx.Done():
		return fail("timed out waiting for a dial-back slot")
	}
	tr := &http.Transport{
		Proxy: nil, // never through a proxy: the checked IP is the destination
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var first error
			for _, ip := range ips {
				c, err := s.cfg.DialBackDial(ctx, "tcp", net.JoinHostPort(ip.String(), port))
				if err == nil {
					return c, nil
				}
				if first == nil {
					first = err
				}
				if ctx.Err() != nil {
					break
				}
			}
			return nil, first
		},
		TLSClientConfig:        s.cfg.DialBackTLS.Clone(),
		TLSHandshakeTimeout:    s.cfg.DialBackTimeout,
		ResponseHeaderTimeout:  s.cfg.DialBackTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
	}
	if tr.TLSClientConfig != nil {
		tr.TLSClientConfig.ServerName = "" // always the address's host
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: s.cfg.DialBackTimeout}
	if _, err := nodeid.Check(ctx, hc, addr, key); err != nil {
		return fail(dialReason(err, hostport))
	}
	return nil
}

// resolve returns the addresses to dial for host: the IP literal itself, or
// the first maxDialBackIPs addresses the name resolves to.
func (s *Server) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := s.cfg.DialBackLookup(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("host %s not found", loginapi.Sanitize(host))
		}
		return nil, fmt.Errorf("looking up %s: %v", loginapi.Sanitize(host), err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("host %s has no addresses", loginapi.Sanitize(host))
	}
	if len(ips) > maxDialBackIPs {
		ips = ips[:maxDialBackIPs]
	}
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		out[i] = ip.Unmap()
	}
	return out, nil
}

// dialReason shortens a nodeid.Check error to the part after its
// "nodeid: check host:port: " prefix.
func dialReason(err error, hostport string) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "nodeid: check "+hostport+": ")
	if errors.Is(err, nodeid.ErrWrongKey) {
		return "the address answered with another node key than the heartbeat's"
	}
	return msg
}
