package netcheck

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/portmap"
	"github.com/parley/parley/wire/snapi"
)

// Online checks the network against what the user's supernode offers: it
// goes online with a short session that shows no presence, takes the STUN
// servers (the relays' UDP ports) and supernodes the supernode lists, adds
// extraSTUN (HOST:PORT,... ; may be empty), and runs the check, asking the
// router for a port mapping unless sc.NoPortMapping.
func Online(ctx context.Context, c *client.Client, sc client.SessionConfig, extraSTUN string) (Report, error) {
	extra, err := ParseSTUN(extraSTUN)
	if err != nil {
		return Report{}, err
	}
	sc.NoPresence = true
	// The session's own port mapping is for calls; this one asks by itself.
	noMapping := sc.NoPortMapping
	sc.NoPortMapping = true
	s, err := c.Online(ctx, sc)
	if err != nil {
		return Report{}, err
	}
	conn, err := s.WaitConn(ctx)
	if err != nil {
		s.Close()
		return Report{}, err
	}
	cfg := Config{Logger: s.Logger(), STUN: append(STUNServers(conn.ICEServers()), extra...)}
	cfg.Supernodes = dedup(append([]string{s.Supernode()}, conn.Supernodes()...))
	s.Close()
	if !noMapping {
		cfg.PortMap = portmap.New(portmap.Config{Logger: cfg.Logger})
	}
	return Run(ctx, cfg)
}

// ParseSTUN reads a comma-separated list of STUN servers, each HOST:PORT
// ([IPv6]:PORT for an IPv6 address); "" is none.
func ParseSTUN(list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(list, ",") {
		_, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: %q is not HOST:PORT", ErrBadServer, s)
		}
		out = append(out, s)
	}
	return out, nil
}

// STUNServers are the host:port of the stun: URLs among servers.
func STUNServers(servers []snapi.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			if hp, ok := strings.CutPrefix(u, "stun:"); ok {
				hp, _, _ = strings.Cut(hp, "?")
				out = append(out, hp)
			}
		}
	}
	return dedup(out)
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
