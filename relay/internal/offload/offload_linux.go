//go:build linux

package offload

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// forwardObj is forward.c compiled (go generate): committed, so that a
// build needs no clang.
//
//go:embed bpf/forward.o
var forwardObj []byte

// The maps' keys and values, laid out as in forward.c; addresses, ports and
// channel numbers in network byte order.
type (
	chanKey struct {
		ClientIP   [4]byte
		ClientPort [2]byte
		Chan       [2]byte
	}
	chanVal struct {
		RelayIP, PeerIP         [4]byte
		RelayPort, PeerPort     [2]byte
		User                    uint32
		Packets, Bytes, Dropped uint64
	}
	peerKey struct {
		PeerIP, RelayIP     [4]byte
		PeerPort, RelayPort [2]byte
	}
	peerVal struct {
		ClientIP, ListenIP      [4]byte
		ClientPort, ListenPort  [2]byte
		Chan                    [2]byte
		Pad                     uint16
		User, Pad2              uint32
		Packets, Bytes, Dropped uint64
	}
	budget struct {
		Tat, Rate, Burst uint64
	}
)

// Offload is the program attached to one interface, and its maps. Its
// methods are safe for concurrent use.
type Offload struct {
	log      *slog.Logger
	listener netip.AddrPort
	iface    string

	mu     sync.Mutex // writers of the maps, and closed
	closed bool
	coll   *ebpf.Collection
	chans  *ebpf.Map // chan_fwd: client -> peer
	peers  *ebpf.Map // peer_fwd: peer -> client
	users  *ebpf.Map // budgets: the users' bandwidth budgets
	link   link.Link
}

// Open loads the program and attaches it to the ingress of cfg.Interface.
// It fails with ErrUnsupported when the kernel refuses (not root, no BPF,
// no TCX: Linux 6.6 or later).
func Open(cfg Config) (*Offload, error) {
	o, err := open(cfg)
	if err != nil {
		return nil, fmt.Errorf("offload: open: %w", err)
	}
	return o, nil
}

func open(cfg Config) (*Offload, error) {
	l := cfg.Listener
	if !l.Addr().Is4() || l.Addr().IsUnspecified() || l.Port() == 0 {
		return nil, fmt.Errorf("%w: Listener %v: need an IPv4 address and port", ErrInvalidConfig, l)
	}
	o := &Offload{log: cfg.Logger, listener: l, iface: cfg.Interface}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ifi, err := findInterface(cfg.Interface, l.Addr())
	if err != nil {
		return nil, err
	}
	o.iface = ifi.Name

	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(forwardObj))
	if err != nil {
		return nil, fmt.Errorf("read the program: %w", err)
	}
	port, routed, mtu := l.Port(), uint8(0), uint16(0)
	if ifi.Flags&net.FlagLoopback == 0 {
		routed = 1 // datagrams to other hosts go out again (redirect)
		mtu = uint16(min(ifi.MTU, 0xffff))
	}
	for name, v := range map[string]any{"listen_ip": l.Addr().As4(), "listen_port": [2]byte{byte(port >> 8), byte(port)},
		"routed": routed, "mtu": mtu} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("the program has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load the program: %w: %w", ErrUnsupported, err)
	}
	lk, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: coll.Programs["forward"],
		Attach: ebpf.AttachTCXIngress})
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attach to %s ingress: %w: %w", ifi.Name, ErrUnsupported, err)
	}
	o.coll, o.chans, o.peers, o.users, o.link = coll, coll.Maps["chan_fwd"], coll.Maps["peer_fwd"], coll.Maps["budgets"], lk
	o.log.Info("offload: attached", "interface", ifi.Name, "listener", l)
	return o, nil
}

// findInterface is the interface named name or, for "", the one holding ip.
func findInterface(name string, ip netip.Addr) (*net.Interface, error) {
	if name != "" {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("%w: Interface %q: %w", ErrInvalidConfig, name, err)
		}
		return ifi, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for i := range ifs {
		addrs, err := ifs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, ok := netip.AddrFromSlice(n.IP); ok && p.Unmap() == ip {
					return &ifs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w: no interface holds %v", ErrInvalidConfig, ip)
}

// Close detaches the program and frees its maps. Later calls return nil.
func (o *Offload) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	err := o.link.Close()
	o.coll.Close()
	if err != nil {
		return fmt.Errorf("offload: close: %w", err)
	}
	o.log.Info("offload: detached", "interface", o.iface)
	return nil
}

// keys returns ch's entries in both maps, counters zero.
func (o *Offload) keys(ch Channel) (chanKey, chanVal, peerKey, peerVal, error) {
	for _, a := range []netip.AddrPort{ch.Client, ch.Relayed, ch.Peer} {
		if !a.Addr().Is4() {
			return chanKey{}, chanVal{}, peerKey{}, peerVal{}, fmt.Errorf("%v: %w", a, ErrNotIPv4)
		}
	}
	num := [2]byte{byte(ch.Number >> 8), byte(ch.Number)}
	ck := chanKey{ClientIP: ch.Client.Addr().As4(), ClientPort: port(ch.Client), Chan: num}
	cv := chanVal{RelayIP: ch.Relayed.Addr().As4(), PeerIP: ch.Peer.Addr().As4(), RelayPort: port(ch.Relayed),
		PeerPort: port(ch.Peer), User: ch.User}
	pk := peerKey{PeerIP: cv.PeerIP, RelayIP: cv.RelayIP, PeerPort: cv.PeerPort, RelayPort: cv.RelayPort}
	pv := peerVal{ClientIP: ck.ClientIP, ListenIP: o.listener.Addr().As4(), ClientPort: ck.ClientPort,
		ListenPort: port(o.listener), Chan: num, User: ch.User}
	return ck, cv, pk, pv, nil
}

func port(a netip.AddrPort) [2]byte { return [2]byte{byte(a.Port() >> 8), byte(a.Port())} }

// Add lets the program forward on ch, both ways, replacing an entry of the
// same client and number or peer and relayed address.
func (o *Offload) Add(ch Channel) error {
	ck, cv, pk, pv, err := o.keys(ch)
	if err != nil {
		return fmt.Errorf("offload: add: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("offload: add: %w", ErrClosed)
	}
	if err := o.chans.Put(&ck, &cv); err != nil {
		return fmt.Errorf("offload: add %v channel %#x: %w", ch.Client, ch.Number, err)
	}
	if err := o.peers.Put(&pk, &pv); err != nil {
		_ = o.chans.Delete(&ck)
		return fmt.Errorf("offload: add %v channel %#x: %w", ch.Client, ch.Number, err)
	}
	return nil
}

// Remove stops the program forwarding on ch, leaving alone an entry that
// Add has since given to another channel, and returns ch's last counts.
func (o *Offload) Remove(ch Channel) (Counts, error) {
	ck, cv, pk, pv, err := o.keys(ch)
	if err != nil {
		return Counts{}, fmt.Errorf("offload: remove: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return Counts{}, nil
	}
	var n Counts
	var errs []error
	var gotC chanVal
	if err := o.chans.Lookup(&ck, &gotC); err == nil && sameChan(gotC, cv) {
		n.ToPeer, n.ToPeerBytes, n.Dropped = gotC.Packets, gotC.Bytes, gotC.Dropped
		errs = append(errs, o.chans.Delete(&ck))
	}
	var gotP peerVal
	if err := o.peers.Lookup(&pk, &gotP); err == nil && samePeer(gotP, pv) {
		n.ToClient, n.ToClientBytes = gotP.Packets, gotP.Bytes
		n.Dropped += gotP.Dropped
		errs = append(errs, o.peers.Delete(&pk))
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("offload: remove %v channel %#x: %w", ch.Client, ch.Number, err)
	}
	return n, nil
}

// Counts returns ch's counters; ok is false when the program does not
// forward on ch.
func (o *Offload) Counts(ch Channel) (n Counts, ok bool) {
	ck, cv, pk, pv, err := o.keys(ch)
	if err != nil {
		return Counts{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return Counts{}, false
	}
	var gotC chanVal
	var gotP peerVal
	if o.chans.Lookup(&ck, &gotC) != nil || !sameChan(gotC, cv) || o.peers.Lookup(&pk, &gotP) != nil ||
		!samePeer(gotP, pv) {
		return Counts{}, false
	}
	return Counts{ToPeer: gotC.Packets, ToPeerBytes: gotC.Bytes, ToClient: gotP.Packets,
		ToClientBytes: gotP.Bytes, Dropped: gotC.Dropped + gotP.Dropped}, true
}

// SetBudget gives user (not 0) a bandwidth budget of rate bytes a second
// with a burst of burst bytes, full, for the channels added with User
// user: both ways summed, payload bytes; datagrams over it are dropped.
func (o *Offload) SetBudget(user uint32, rate, burst int) error {
	if user == 0 || rate <= 0 || burst <= 0 {
		return fmt.Errorf("offload: set budget of user %d: %w: rate %d, burst %d", user, ErrInvalidConfig, rate, burst)
	}
	b := budget{Rate: uint64(rate), Burst: uint64(burst) * 1e9 / uint64(rate)}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("offload: set budget: %w", ErrClosed)
	}
	if err := o.users.Put(&user, &b); err != nil {
		return fmt.Errorf("offload: set budget of user %d: %w", user, err)
	}
	return nil
}

// RemoveBudget removes user's budget (channels still naming it drop
// everything).
func (o *Offload) RemoveBudget(user uint32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	if err := o.users.Delete(&user); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("offload: remove budget of user %d: %w", user, err)
	}
	return nil
}

func sameChan(a, b chanVal) bool {
	return a.RelayIP == b.RelayIP && a.PeerIP == b.PeerIP && a.RelayPort == b.RelayPort && a.PeerPort == b.PeerPort
}

func samePeer(a, b peerVal) bool {
	return a.ClientIP == b.ClientIP && a.ClientPort == b.ClientPort && a.Chan == b.Chan
}

// Len returns the number of entries in each map (tests: nothing left
// behind).
func (o *Offload) Len() (chans, peers int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, 0
	}
	return count(o.chans), count(o.peers)
}

func count(m *ebpf.Map) int {
	n := 0
	it := m.Iterate()
	var k, v []byte
	for it.Next(&k, &v) {
		n++
	}
	return n
}
