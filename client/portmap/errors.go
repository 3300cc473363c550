package portmap

import "errors"

var (
	// ErrNoGateway means no router answered NAT-PMP or UPnP IGD.
	ErrNoGateway = errors.New("portmap: no router offers port mapping")
	// ErrUseless means the router mapped a port on an address that is not the
	// one the internet sees (the router is behind another NAT, such as a
	// carrier's): offering it to a peer would only waste its checks.
	ErrUseless = errors.New("portmap: mapping is behind another NAT")
)
