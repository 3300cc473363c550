package login

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
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
	cert       string        // what is wrong with the supernode's TLS certificate, if that is why
}

// dialBack checks that addr (a canonical ws:// or wss:// URL) answers
// GET /v1/identify with key, for a heartbeat from client address src. It
// returns nil on success. The target must be an IP literal, or a name whose
// every address, that the dial-back tries, passes addrpolicy.PeerAllowed with
// Config.DialBackAllow; the connection goes to those checked IPs only.
func (s *Server) dialBack(ctx context.Context, src, addr string, key ed25519.PublicKey) *dialFailure {
	if wait := s.dialLim.beginAddr(src, s.now()); wait > 0 {
		secs := retrySeconds(wait)
		s.m.rateLimited.WithLabelValues(limitDialBacks).Inc()
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
		if problem := certProblem(err, host); problem != "" {
			f := fail("its TLS certificate " + problem + " (" + certHint + ")")
			f.cert = problem
			return f
		}
		return fail(dialReason(err, hostport))
	}
	return nil
}

// certHint is what a supernode's certificate must be, for the messages
// about one that is not.
const certHint = "it must be for the host name in the URL, not an IP address, from a CA clients trust; --acme-domain gets one"

// certProblem says what is wrong with the certificate a TLS dial-back to
// host was refused for ("is self-signed", "expired on …", "is for … not
// host"), or "" when err is not about the certificate.
func certProblem(err error, host string) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		if c := unknown.Cert; c != nil && bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil {
			return "is self-signed"
		}
		return "is signed by a CA this login server does not trust"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		if c := invalid.Cert; c != nil && time.Now().Before(c.NotBefore) {
			return fmt.Sprintf("is not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
		}
		if c := invalid.Cert; c != nil {
			return fmt.Sprintf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
		}
		return "has expired"
	case errors.As(err, &invalid):
		return "is not valid: " + invalid.Error()
	case errors.As(err, &hostErr):
		var names []string
		if c := hostErr.Certificate; c != nil {
			names = append(names, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				names = append(names, ip.String())
			}
		}
		if net.ParseIP(host) != nil {
			return fmt.Sprintf("is for %s, and the URL has the IP address %s: name the supernode by a host name (--public-addr)",
				strings.Join(names, ", "), host)
		}
		return fmt.Sprintf("is for %s, not %s", strings.Join(names, ", "), host)
	}
	return ""
}

// certWarnings remembers the supernode certificate problems already
// logged, so that each (address, problem) is logged once as a warning and
// then only at debug level (a supernode retries its heartbeat every few
// seconds). At most maxCertWarnings are kept; then it starts afresh.
type certWarnings struct {
	mu   sync.Mutex
	seen map[[2]string]bool
}

const maxCertWarnings = 1024

// first reports whether (addr, problem) is new, and remembers it.
func (w *certWarnings) first(addr, problem string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]string{addr, problem}
	if w.seen[k] {
		return false
	}
	if w.seen == nil || len(w.seen) >= maxCertWarnings {
		w.seen = map[[2]string]bool{}
	}
	w.seen[k] = true
	return true
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
