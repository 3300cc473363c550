// Package portmap asks the home router for a UDP port mapping, with NAT-PMP
// (RFC 6886) or UPnP IGD (WANIPConnection 1 and 2, WANPPPConnection), keeps
// it renewed, and deletes it at the end. A mapped port lets a peer reach this
// host through a NAT that hole punching cannot get through (a symmetric one).
//
// A router behind another NAT (a carrier's) maps a port on its own WAN
// address, which the internet never sees: [Useful] compares the mapping with
// the address a STUN server saw, and such a mapping is not offered.
package portmap

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/ssdp"
	natpmp "github.com/jackpal/go-nat-pmp"
)

// Protocols, as Mapping.Protocol names them.
const (
	NATPMP = "nat-pmp"
	UPnP   = "upnp"
)

// Config configures [New]. The zero value asks the default route's gateway.
type Config struct {
	// Gateway is the router NAT-PMP asks; zero means the default route's
	// gateway (/proc/net/route). UPnP finds its router by SSDP on the LAN.
	Gateway netip.Addr
	// Lifetime is the lease asked for. Default 10 minutes; the mapping is
	// renewed at half of what the router grants.
	Lifetime time.Duration
	// Timeout bounds each protocol's try. Default 2 s (UPnP discovery waits
	// 1.2 s for answers to its search, whatever the timeout).
	Timeout time.Duration
	// Description names the mapping in the router's UPnP table. Default "parley".
	Description string
	// Logger receives renewals and failures at debug level; nil discards them.
	Logger *slog.Logger
}

// Client maps ports on the router. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	igd   igdClient // the UPnP service found, kept
	local string    // this host's address towards it
	pref  string    // the protocol that answered last (tried first)
}

// New returns a client; it sends nothing until Map.
func New(cfg Config) *Client {
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Description == "" {
		cfg.Description = "parley"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log}
}

// Mapping is one UDP port mapped on the router.
type Mapping struct {
	// Protocol is how it was asked for: NATPMP or UPnP.
	Protocol string
	// External is the router's outside address and the port mapped on it.
	External netip.AddrPort
	// InternalPort is this host's port the router forwards to.
	InternalPort uint16
	// Lifetime is what the router granted (0: until deleted).
	Lifetime time.Duration

	igd      igdClient // UPnP only
	internal string    // UPnP only: this host's LAN address
}

// igdClient is what this package uses of a goupnp WAN connection service.
type igdClient interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string, intPort uint16, intClient string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// Map asks the router to forward UDP to this host's internalPort: NAT-PMP
// first (one round trip), then UPnP IGD — the protocol that answered last
// first. It asks for the same external port.
func (c *Client) Map(ctx context.Context, internalPort uint16) (Mapping, error) {
	c.mu.Lock()
	upnpFirst := c.pref == UPnP
	c.mu.Unlock()
	if upnpFirst {
		if m, err := c.mapUPnP(ctx, internalPort, internalPort); err == nil {
			return m, nil
		}
	}
	m, perr := c.mapNATPMP(ctx, internalPort)
	if perr == nil {
		c.prefer(NATPMP)
		return m, nil
	}
	c.log.Debug("nat-pmp", "err", perr)
	m, uerr := c.mapUPnP(ctx, internalPort, internalPort)
	if uerr == nil {
		c.prefer(UPnP)
		return m, nil
	}
	c.log.Debug("upnp", "err", uerr)
	return Mapping{}, fmt.Errorf("%w (nat-pmp: %v; upnp: %v)", ErrNoGateway, perr, uerr)
}

func (c *Client) prefer(protocol string) {
	c.mu.Lock()
	c.pref = protocol
	c.mu.Unlock()
}

// External is the router's outside address, as NAT-PMP or else UPnP IGD
// tells it. The first call also finds the UPnP router (SSDP, 1.2 s),
// which later mappings reuse.
func (c *Client) External(ctx context.Context) (netip.Addr, error) {
	if gw, err := c.gateway(); err == nil {
		ext, perr := natpmp.NewClientWithTimeout(gw.AsSlice(), c.timeout(ctx)).GetExternalAddress()
		if perr == nil {
			c.prefer(NATPMP)
			return netip.AddrFrom4(ext.ExternalIPAddress), nil
		}
	}
	igd, _, err := c.findIGD(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s, err := igd.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: upnp external address: %w", err)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: upnp external address %q: %w", s, err)
	}
	c.prefer(UPnP)
	return a, nil
}

// Local is this host's address towards the router: the address a mapping
// forwards to, whose sockets are worth mapping.
func (c *Client) Local() (netip.Addr, error) {
	gw, err := c.gateway()
	if err != nil {
		return netip.Addr{}, err
	}
	ip := localAddrTowards(netip.AddrPortFrom(gw, 5351).String())
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("portmap: no address towards %s", gw)
	}
	return a.Unmap(), nil
}

// timeout is the configured timeout, or less when ctx ends sooner.
func (c *Client) timeout(ctx context.Context) time.Duration {
	t := c.cfg.Timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < t {
		t = time.Until(d)
	}
	return t
}

// Renew asks again for m, before its lease runs out.
func (c *Client) Renew(ctx context.Context, m Mapping) (Mapping, error) {
	if m.Protocol == NATPMP {
		return c.mapNATPMP(ctx, m.InternalPort)
	}
	return c.addUPnP(ctx, m.igd, m.internal, m.InternalPort, m.External.Port())
}

// Unmap deletes m on the router.
func (c *Client) Unmap(ctx context.Context, m Mapping) error {
	if m.Protocol == NATPMP {
		gw, err := c.gateway()
		if err != nil {
			return err
		}
		// A lifetime of 0 deletes (RFC 6886 §3.4); the requested external
		// port must be 0 too.
		if _, err := natpmp.NewClientWithTimeout(gw.AsSlice(), c.cfg.Timeout).AddPortMapping("udp", int(m.InternalPort), 0, 0); err != nil {
			return fmt.Errorf("portmap: delete (nat-pmp): %w", err)
		}
		return nil
	}
	if m.igd == nil {
		return fmt.Errorf("portmap: delete: %w", ErrNoGateway)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := m.igd.DeletePortMappingCtx(ctx, "", m.External.Port(), "UDP"); err != nil {
		return fmt.Errorf("portmap: delete (upnp): %w", err)
	}
	return nil
}

// Keep renews m at half its lifetime until ctx ends, then deletes it;
// onChange (may be nil) hears of each renewal whose external address
// changed. It returns when the mapping is deleted.
func (c *Client) Keep(ctx context.Context, m Mapping, onChange func(Mapping)) {
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		if err := c.Unmap(dctx, m); err != nil {
			c.log.Debug("deleting the port mapping", "err", err)
		}
	}()
	for {
		wait := m.Lifetime / 2
		if wait <= 0 {
			wait = c.cfg.Lifetime / 2
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := c.Renew(ctx, m)
		if err != nil {
			c.log.Debug("renewing the port mapping", "err", err)
			continue // try again after the same wait; the lease outlasts it
		}
		if n.External != m.External && onChange != nil {
			onChange(n)
		}
		m = n
	}
}

// Useful checks that m is on the address seen, the one a STUN server on the
// internet saw this host at: a router behind another NAT maps a port on its
// own WAN address, which nobody outside can reach.
func Useful(m Mapping, seen netip.Addr) error {
	if !seen.IsValid() {
		return fmt.Errorf("%w: no STUN server saw this host", ErrUseless)
	}
	if m.External.Addr().Unmap() != seen.Unmap() {
		return fmt.Errorf("%w: the router maps on %s, the internet sees %s", ErrUseless, m.External.Addr(), seen)
	}
	return nil
}

func (c *Client) mapNATPMP(ctx context.Context, internalPort uint16) (Mapping, error) {
	gw, err := c.gateway()
	if err != nil {
		return Mapping{}, err
	}
	pmp := natpmp.NewClientWithTimeout(gw.AsSlice(), c.timeout(ctx))
	ext, err := pmp.GetExternalAddress()
	if err != nil {
		return Mapping{}, fmt.Errorf("portmap: nat-pmp external address: %w", err)
	}
	res, err := pmp.AddPortMapping("udp", int(internalPort), int(internalPort), int(c.cfg.Lifetime/time.Second))
	if err != nil {
		return Mapping{}, fmt.Errorf("portmap: nat-pmp map: %w", err)
	}
	return Mapping{Protocol: NATPMP, External: netip.AddrPortFrom(netip.AddrFrom4(ext.ExternalIPAddress), res.MappedExternalPort),
		InternalPort: internalPort, Lifetime: time.Duration(res.PortMappingLifetimeInSeconds) * time.Second}, nil
}

func (c *Client) mapUPnP(ctx context.Context, internalPort, externalPort uint16) (Mapping, error) {
	igd, local, err := c.findIGD(ctx)
	if err != nil {
		return Mapping{}, err
	}
	m, err := c.addUPnP(ctx, igd, local, internalPort, externalPort)
	if err != nil && externalPort == internalPort {
		// The port is taken on the router: one more try on another.
		m, err = c.addUPnP(ctx, igd, local, internalPort, uint16(1024+rand.IntN(64511)))
	}
	return m, err
}

func (c *Client) addUPnP(ctx context.Context, igd igdClient, internal string, internalPort, externalPort uint16) (Mapping, error) {
	if igd == nil {
		return Mapping{}, ErrNoGateway
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	extIP, err := igd.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return Mapping{}, fmt.Errorf("portmap: upnp external address: %w", err)
	}
	ip, err := netip.ParseAddr(extIP)
	if err != nil {
		return Mapping{}, fmt.Errorf("portmap: upnp external address %q: %w", extIP, err)
	}
	lease := uint32(c.cfg.Lifetime / time.Second)
	err = igd.AddPortMappingCtx(ctx, "", externalPort, "UDP", internalPort, internal, true, c.cfg.Description, lease)
	if err != nil && strings.Contains(err.Error(), "725") { // OnlyPermanentLeasesSupported
		lease = 0
		err = igd.AddPortMappingCtx(ctx, "", externalPort, "UDP", internalPort, internal, true, c.cfg.Description, 0)
	}
	if err != nil {
		return Mapping{}, fmt.Errorf("portmap: upnp map: %w", err)
	}
	return Mapping{Protocol: UPnP, External: netip.AddrPortFrom(ip, externalPort), InternalPort: internalPort,
		Lifetime: time.Duration(lease) * time.Second, igd: igd, internal: internal}, nil
}

// findIGD finds the router's WAN connection service by SSDP, and this
// host's address towards it (once; both are kept).
func (c *Client) findIGD(ctx context.Context) (igdClient, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.igd != nil {
		return c.igd, c.local, nil
	}
	roots, err := c.search(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("portmap: upnp discovery: %w", err)
	}
	for _, r := range roots {
		var found []igdClient
		if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(r.Root, r.Location); err == nil {
			for _, s := range cs {
				found = append(found, s)
			}
		}
		if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(r.Root, r.Location); err == nil {
			for _, s := range cs {
				found = append(found, s)
			}
		}
		if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(r.Root, r.Location); err == nil {
			for _, s := range cs {
				found = append(found, s)
			}
		}
		if len(found) == 0 {
			continue
		}
		local := localAddrTowards(r.Location.Host)
		if local == nil {
			continue
		}
		c.igd, c.local = found[0], local.String()
		return c.igd, c.local, nil
	}
	return nil, "", fmt.Errorf("portmap: upnp: %w", ErrNoGateway)
}

// searchWindow is how long an SSDP search waits for answers: routers answer
// within MX seconds, here 1 (UPnP's minimum).
const searchWindow = 1200 * time.Millisecond

// foundRoot is a UPnP root device an SSDP search found.
type foundRoot struct {
	Root     *goupnp.RootDevice
	Location *url.URL
}

// search sends an SSDP search for root devices from the address towards the
// router (twice) and reads each answering device's description.
func (c *Client) search(ctx context.Context) ([]foundRoot, error) {
	local, err := c.Local()
	if err != nil {
		return nil, err
	}
	hc, err := httpu.NewHTTPUClientAddr(local.String())
	if err != nil {
		return nil, err
	}
	defer hc.Close()
	sctx, cancel := context.WithTimeout(ctx, searchWindow)
	resps, err := ssdp.RawSearch(sctx, hc, ssdp.UPNPRootDevice, 2)
	cancel()
	if err != nil {
		return nil, err
	}
	var out []foundRoot
	for _, r := range resps {
		loc, err := r.Location()
		if err != nil {
			continue
		}
		root, err := goupnp.DeviceByURLCtx(ctx, loc)
		if err != nil {
			c.log.Debug("upnp device", "location", loc, "err", err)
			continue
		}
		out = append(out, foundRoot{Root: root, Location: loc})
	}
	return out, nil
}

// localAddrTowards is the address this host sends from to hostport.
func localAddrTowards(hostport string) net.IP {
	conn, err := net.Dial("udp", hostport)
	if err != nil {
		return nil
	}
	defer conn.Close()
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.IP
	}
	return nil
}

// gateway is the configured gateway or the default route's.
func (c *Client) gateway() (netip.Addr, error) {
	if c.cfg.Gateway.IsValid() {
		return c.cfg.Gateway, nil
	}
	return defaultGateway("/proc/net/route")
}

// defaultGateway reads the IPv4 default route's gateway from a
// /proc/net/route table.
func defaultGateway(path string) (netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: gateway: %w", err)
	}
	defer f.Close()
	return parseRoutes(bufio.NewScanner(f))
}

func parseRoutes(sc *bufio.Scanner) (netip.Addr, error) {
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[1] != "00000000" || f[2] == "00000000" {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(b))
		return netip.AddrFrom4(a), nil
	}
	return netip.Addr{}, fmt.Errorf("portmap: gateway: %w", ErrNoGateway)
}
