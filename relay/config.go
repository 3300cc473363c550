package relay

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero values of Config.
const (
	// DefaultRealm is the TURN realm when Config.Realm is "".
	DefaultRealm = "parley"
	// DefaultMaxAllocationsPerUser is the allocation quota when
	// Config.MaxAllocationsPerUser is 0: a device in a conference of eight
	// (docs/conference.md) has 7 calls, each allocating over UDP, TCP and
	// TLS.
	DefaultMaxAllocationsPerUser = 24
	// DefaultUserBandwidth is the per-user relay budget in bytes per second
	// when Config.UserBandwidth is 0: a few calls' worth of Opus and video.
	DefaultUserBandwidth = 256 << 10
	// DefaultMaxConnsPerAddr is the cap of Config.MaxConnsPerAddr when it
	// is 0.
	DefaultMaxConnsPerAddr = 64
	// DefaultSocketBuffer is the receive and send buffer of the TURN UDP
	// listener when Config.SocketBuffer is 0: every client's packets queue
	// there, and a burst that outruns the relay for a moment waits instead
	// of being dropped (the kernel's default is about 208 KiB; coturn uses
	// the same 2 MiB).
	DefaultSocketBuffer = 2 << 20
	// DefaultRelaySocketBuffer is the receive and send buffer of each
	// allocation's relayed socket when Config.RelaySocketBuffer is 0: one
	// allocation's peers, a call's worth of packets.
	DefaultRelaySocketBuffer = 256 << 10
	// MinSecretLen is the shortest TURN-REST secret New accepts.
	MinSecretLen = 16
)

// Config configures New. The zero value of each field is its documented
// default; RelayIP, Secret and at least one listener are required.
type Config struct {
	// UDPAddr is the TURN-over-UDP listen address, e.g. "0.0.0.0:3478". This
	// listener also answers plain STUN Binding requests. "" = no UDP listener.
	UDPAddr string
	// TCPAddr is the TURN-over-TCP listen address, e.g. "0.0.0.0:3478".
	// "" = none.
	TCPAddr string
	// TLSAddr is the TURN-over-TLS listen address, e.g. "0.0.0.0:443" (443
	// gets through strict firewalls). "" = none. Needs TLSConfig.
	TLSAddr string
	// TLSConfig holds the certificate for TLSAddr or TLSListener (Certificates,
	// GetCertificate or GetConfigForClient must be set). It is cloned; a
	// MinVersion below TLS 1.2 is raised to TLS 1.2.
	TLSConfig *tls.Config

	// UDPListeners is how many sockets share UDPAddr (SO_REUSEPORT), each
	// read by its own goroutine, so that clients' packets are read on
	// several cores; the kernel sends all of one client's datagrams to the
	// same socket. 0 = GOMAXPROCS (one socket on one core). It applies to
	// UDPAddr only: a PacketConn is used alone.
	UDPListeners int

	// PacketConn, TCPListener and TLSListener are ready listeners to use
	// instead of UDPAddr, TCPAddr and TLSAddr (tests, socket activation);
	// setting both a listener and its address is an error. TLSListener is a
	// plain TCP listener: the server adds TLS with TLSConfig. Once New
	// succeeds the Server owns them and Close closes them.
	PacketConn  net.PacketConn
	TCPListener net.Listener
	TLSListener net.Listener

	// RelayIP is the address relayed allocations are advertised as and, unless
	// RelayBindIP is set, bound to (required; not unspecified or multicast).
	// Without SecondRelayIP its family (IPv4 or IPv6) is the family of every
	// allocation.
	RelayIP net.IP
	// RelayBindIP is the local address allocation sockets bind to when it
	// differs from RelayIP, e.g. behind a 1:1 NAT (RelayIP the public address,
	// RelayBindIP the private interface address or 0.0.0.0). nil = RelayIP.
	RelayBindIP net.IP
	// SecondRelayIP is a relay address of the other family than RelayIP's,
	// for a dual-stack host (RelayIP its IPv4 address, SecondRelayIP its
	// IPv6 one, or the other way round): the relay then allocates in both
	// families (RFC 6156). A client gets the family it asks for with
	// REQUESTED-ADDRESS-FAMILY or, asking none, the family of the address it
	// reached the relay at; its peers must be of the same family. nil =
	// allocations of RelayIP's family only: a request for the other is
	// refused (pion answers 508 Insufficient Capacity).
	SecondRelayIP net.IP
	// SecondRelayBindIP is RelayBindIP for SecondRelayIP (e.g. "::" behind
	// a firewall that forwards the public IPv6 address). nil = SecondRelayIP.
	SecondRelayBindIP net.IP

	// Secret is the TURN-REST shared secret (required, at least MinSecretLen
	// bytes); supernodes make credentials with the same secret. It is copied
	// and never logged.
	Secret []byte
	// Realm is the TURN realm. "" = DefaultRealm.
	Realm string
	// RefreshGrace is how long after its expiry a credential still
	// authenticates the requests that keep an existing allocation going
	// (Refresh, CreatePermission, ChannelBind); Allocate always needs an
	// unexpired credential. TURN clients keep using the credential they
	// allocated with, so without a grace a relayed call ends within about ten
	// minutes of its credential's expiry. 0 = none (every request needs an
	// unexpired credential); at most MaxCredentialTTL.
	RefreshGrace time.Duration

	// AllowPeers are exceptions to the peer deny list (see PeerAllowed), for
	// labs (--relay-allow-peer CIDR). nil = none: a public relay needs none.
	AllowPeers []netip.Prefix

	// MaxAllocationsPerUser caps a user's live allocations, counted across all
	// their credentials and clients. 0 = DefaultMaxAllocationsPerUser;
	// negative = no cap.
	MaxAllocationsPerUser int
	// MaxConnsPerAddr caps the TCP and TLS connections one address (IPv4
	// address, IPv6 /64) holds at once; one beyond it is closed as soon as
	// it is accepted. 0 = DefaultMaxConnsPerAddr; negative = no cap.
	MaxConnsPerAddr int
	// UserBandwidth is the bytes per second relayed for one user, client to
	// peer and peer to client summed, across all their allocations (UDP
	// payload bytes, not counting TURN framing), with a burst of one second's
	// worth. Packets over budget are dropped. 0 = DefaultUserBandwidth;
	// negative = unlimited.
	UserBandwidth int

	// SocketBuffer is the receive and send buffer size in bytes of the TURN
	// UDP listener. 0 = DefaultSocketBuffer; negative = the kernel's default
	// (net.core.rmem_default). Run as root (CAP_NET_ADMIN) the size is set
	// whatever net.core.rmem_max and wmem_max say; otherwise the kernel caps
	// it there. The sizes obtained are logged at start.
	SocketBuffer int
	// RelaySocketBuffer is the same for each allocation's relayed socket.
	// 0 = DefaultRelaySocketBuffer; negative = the kernel's default. It is
	// a cap, not memory set aside: an idle allocation's buffers are empty.
	RelaySocketBuffer int

	// KernelOffload forwards ChannelData between UDP clients and their
	// peers on bound channels in the kernel (a TC BPF program on the UDP
	// listener's interface, Linux, root), so the relay's process never
	// sees those packets. A prototype: IPv4 only; the listener must be a
	// specific IPv4 address, and clients and peers must reach the host on
	// the interface that holds it (on any other interface the datagrams are
	// sent back out of it). The kernel applies UserBandwidth with a bucket
	// of its own, so a user relaying both through the kernel and through
	// the relay's sockets gets up to twice it. If the program cannot be
	// loaded the relay logs why and runs without it. false = off.
	KernelOffload bool

	// Logger receives the relay's logs (see docs/relay.md). nil = discard.
	Logger *slog.Logger
	// Metrics, when set, receives the relay's Prometheus metrics
	// (parley_relay_…, see docs/operations.md); Close unregisters them.
	// nil: none are exported.
	Metrics prometheus.Registerer
	// Now is the clock for credential expiry and bandwidth accounting.
	// nil = time.Now.
	Now func() time.Time

	// permissionTimeout and channelTimeout shorten pion's permission and
	// channel lifetimes (5 and 10 minutes) for tests of their expiry.
	permissionTimeout, channelTimeout time.Duration
}
