// Package relay is Parley's TURN relay and STUN server: the media path of last
// resort when two clients cannot reach each other directly (symmetric NATs,
// UDP-blocking firewalls). It runs inside every supernode and alone as
// `parley relay`.
//
// It wraps pion/turn's server with what a public relay needs:
//
//   - Authentication by TURN-REST credentials only ([turncred.Credentials], package wire/turncred): a username
//     "EXPIRY:user" and the password base64(HMAC-SHA1(secret, username)). A
//     supernode shares the secret with its relays and hands each attached,
//     authenticated client short-lived credentials; the relay checks them
//     statelessly against its injected clock.
//   - A peer deny list ([addrpolicy.PeerAllowed], package internal/addrpolicy): no relaying to loopback, private,
//     link-local (cloud metadata), CGNAT, multicast, documentation and other
//     special ranges, in any of their IPv6 disguises, unless an operator
//     allows a range for a lab (Config.AllowPeers).
//   - The same-relay rule: an allocation may send to another allocation on the
//     same relay (two users relayed by one relay), but not to any other port of
//     the relay host (its TURN listeners, its supernode, SSH, ...).
//   - Per-user quotas: at most Config.MaxAllocationsPerUser live allocations and
//     Config.UserBandwidth bytes per second relayed, shared by all of a user's
//     allocations; packets over budget are dropped, never queued.
//
// Clients reach the relay by TURN over UDP (which also answers plain STUN
// Binding requests), TCP or TLS; relayed allocations are always UDP (RFC 6062
// TCP allocations are refused), in IPv4 or IPv6 (RFC 6156): RelayIP's
// family, and with Config.SecondRelayIP the other one too. See
// docs/relay.md for operators.
package relay
