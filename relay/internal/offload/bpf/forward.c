// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The relay's in-kernel fast path: a TC ingress program that forwards
// ChannelData between TURN clients and peers on bound channels, so that
// user space never sees those packets. IPv4 and UDP only; anything else,
// and every packet of a channel the maps do not hold, passes untouched to
// the relay's sockets (TCX "next").
//
// client -> peer: UDP to the relay's listener whose payload is exactly one
// ChannelData message on a channel in chan_fwd: the 4-byte header is
// removed and the datagram goes from the allocation's relayed address to
// the peer.
// peer -> client: UDP from a peer to a relayed address in peer_fwd: a
// 4-byte ChannelData header is added and the datagram goes from the
// listener to the client.
//
// The UDP checksum of a rewritten datagram is 0 (none, legal in IPv4).
// On loopback a rewritten datagram goes up the stack; on other interfaces
// back out of the one it came in on (see deliver).
// Build: clang -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -c forward.c -o forward.o
// (go generate ./relay/internal/offload/).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

static long (*bpf_skb_load_bytes)(const void *skb, __u32 off, void *to, __u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_skb_store_bytes)(void *skb, __u32 off, const void *from, __u32 len, __u64 flags) =
	(void *)BPF_FUNC_skb_store_bytes;
static long (*bpf_skb_adjust_room)(void *skb, __s32 len_diff, __u32 mode, __u64 flags) =
	(void *)BPF_FUNC_skb_adjust_room;
static long (*bpf_skb_change_tail)(void *skb, __u32 len, __u64 flags) = (void *)BPF_FUNC_skb_change_tail;
static long (*bpf_l3_csum_replace)(void *skb, __u32 off, __u64 from, __u64 to, __u64 size) =
	(void *)BPF_FUNC_l3_csum_replace;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) =
	(void *)BPF_FUNC_redirect_neigh;

#define bswap16(x) __builtin_bswap16(x)
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

// The relay's UDP listener, in network byte order; set at load time.
// listen_ip 0 is any address of the host.
volatile const __u32 listen_ip = 0;
volatile const __u16 listen_port = 0;
// routed: the interface is not a loopback one, so a rewritten datagram to
// another host is sent out (FIB lookup, redirect), not delivered up.
volatile const __u8 routed = 0;
// mtu: on a routed interface, its MTU when the program was loaded: a peer's
// datagram that the 4-byte header would take over it goes to the relay's
// socket, which sends it as the kernel allows (fragments). 0: no check.
volatile const __u16 mtu = 0;

// chan_key names a channel as a client's ChannelData does. Network byte
// order, as on the wire.
struct chan_key {
	__u32 client_ip;
	__u16 client_port;
	__u16 chan;
};

// chan_val is where a channel's datagrams go, and their count.
struct chan_val {
	__u32 relay_ip; // the allocation's relayed address (source)
	__u32 peer_ip;  // the peer (destination)
	__u16 relay_port;
	__u16 peer_port;
	__u32 user;    // the user's budget in budgets; 0: none
	__u64 packets; // forwarded by this program
	__u64 bytes;   // payload bytes forwarded
	__u64 dropped; // dropped over the user's budget
};

// peer_key names a peer's datagrams to an allocation.
struct peer_key {
	__u32 peer_ip;
	__u32 relay_ip;
	__u16 peer_port;
	__u16 relay_port;
};

// peer_val is the client a peer's datagrams go to, on which channel.
struct peer_val {
	__u32 client_ip;
	__u32 listen_ip; // source: the listener the client talks to
	__u16 client_port;
	__u16 listen_port;
	__u16 chan;
	__u16 pad;
	__u32 user;
	__u32 pad2;
	__u64 packets;
	__u64 bytes;
	__u64 dropped;
};

// budget is a user's bandwidth budget: GCRA, the theoretical arrival time
// of the next byte in one word (as the relay's bucket in user space, a
// bucket of its own, on the kernel's monotonic clock).
struct budget {
	__u64 tat;   // ns (bpf_ktime_get_ns) at which the bucket is full again
	__u64 rate;  // bytes per second
	__u64 burst; // tolerance in ns
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct chan_key);
	__type(value, struct chan_val);
} chan_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct peer_key);
	__type(value, struct peer_val);
} peer_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct budget);
} budgets SEC(".maps");

// spend charges n bytes to user's budget and reports whether they fit.
static __always_inline int spend(__u32 user, __u32 n)
{
	if (!user)
		return 1;
	struct budget *b = bpf_map_lookup_elem(&budgets, &user);
	if (!b || !b->rate)
		return 0;
	__u64 now = bpf_ktime_get_ns(), cost = (__u64)n * 1000000000ull / b->rate;
	for (int i = 0; i < 8; i++) {
		__u64 tat = b->tat;
		__u64 next = (tat > now ? tat : now) + cost;
		if (next - now > b->burst)
			return 0;
		if (__sync_val_compare_and_swap(&b->tat, tat, next) == tat)
			return 1;
	}
	return 0;
}

#define IP_OFF ETH_HLEN
#define UDP_OFF (ETH_HLEN + sizeof(struct iphdr))
#define CD_LEN 4 // the ChannelData header
#define TTL 64 // of a datagram the relay sends on (it originates it)

// rewrite sets the IP addresses and total length (fixing the header
// checksum) and writes a UDP header with no checksum at UDP_OFF.
static __always_inline int rewrite(struct __sk_buff *skb, struct iphdr *ip, __u32 saddr, __u32 daddr, __u16 sport,
				   __u16 dport, __u16 udp_len)
{
	__u16 old_len = ip->tot_len, new_len = bswap16(udp_len + sizeof(struct iphdr));
	if (bpf_l3_csum_replace(skb, IP_OFF + __builtin_offsetof(struct iphdr, check), ip->saddr, saddr, 4) ||
	    bpf_l3_csum_replace(skb, IP_OFF + __builtin_offsetof(struct iphdr, check), ip->daddr, daddr, 4) ||
	    bpf_l3_csum_replace(skb, IP_OFF + __builtin_offsetof(struct iphdr, check), old_len, new_len, 2))
		return -1;
	__u32 addrs[2] = {saddr, daddr};
	if (bpf_skb_store_bytes(skb, IP_OFF + __builtin_offsetof(struct iphdr, saddr), addrs, 8, 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF + __builtin_offsetof(struct iphdr, tot_len), &new_len, 2, 0))
		return -1;
	if (routed) {
		// The TTL of a new datagram (the 16-bit word of TTL and protocol).
		__u16 old_w = *(__u16 *)&ip->ttl, new_w;
		__u8 tp[2] = {TTL, IPPROTO_UDP};
		__builtin_memcpy(&new_w, tp, 2);
		if (bpf_l3_csum_replace(skb, IP_OFF + __builtin_offsetof(struct iphdr, check), old_w, new_w, 2) ||
		    bpf_skb_store_bytes(skb, IP_OFF + __builtin_offsetof(struct iphdr, ttl), &new_w, 2, 0))
			return -1;
	}
	struct udphdr udp = {.source = sport, .dest = dport, .len = bswap16(udp_len), .check = 0};
	return bpf_skb_store_bytes(skb, UDP_OFF, &udp, sizeof(udp), 0) ? -1 : 0;
}

// deliver sends a rewritten datagram on: on loopback up the stack (both
// ends are local), else back out of the interface it came in on, the
// kernel's route and neighbour tables giving the next hop and MAC
// addresses (bpf_redirect_neigh drops it when the route to the
// destination leaves by another interface). Peers on the relay host
// itself are never offloaded (the same-relay rule), so on a routed
// interface every destination is another host. bpf_fib_lookup would
// find the interface but refuses unless IP forwarding is on for the
// ingress interface.
static __always_inline int deliver(struct __sk_buff *skb)
{
	if (!routed)
		return TC_ACT_OK;
	return bpf_redirect_neigh(skb->ingress_ifindex, 0, 0, 0);
}

SEC("tc")
int forward(struct __sk_buff *skb)
{
	if (skb->protocol != bswap16(ETH_P_IP) || skb->gso_segs > 1)
		return TC_ACT_UNSPEC;
	struct {
		struct iphdr ip;
		struct udphdr udp;
		__u8 cd[CD_LEN];
	} h;
	if (bpf_skb_load_bytes(skb, IP_OFF, &h, sizeof(h)))
		return TC_ACT_UNSPEC;
	// Plain datagrams only: no IP options, no fragments, the UDP length
	// agreeing with the IP length.
	if (h.ip.version != 4 || h.ip.ihl != 5 || h.ip.protocol != IPPROTO_UDP || (h.ip.frag_off & bswap16(0x3fff)))
		return TC_ACT_UNSPEC;
	__u16 udp_len = bswap16(h.udp.len);
	if (udp_len != bswap16(h.ip.tot_len) - sizeof(struct iphdr) || udp_len < sizeof(struct udphdr))
		return TC_ACT_UNSPEC;
	// The frame must hold exactly the datagram: a truncated one, or one
	// with bytes after it (an Ethernet frame's padding), goes to the stack,
	// which checks and trims it.
	if (skb->len != IP_OFF + bswap16(h.ip.tot_len))
		return TC_ACT_UNSPEC;
	__u16 payload = udp_len - sizeof(struct udphdr);

	if (h.udp.dest == listen_port && (listen_ip == 0 || h.ip.daddr == listen_ip)) {
		// To the listener: one ChannelData message, padded to a multiple
		// of 4 bytes or not (RFC 8656 12.5: clients such as pion's pad
		// over UDP too); the padding does not go on. Anything longer goes
		// to the relay, which forwards the declared length only.
		if (payload < CD_LEN || (h.cd[0] & 0xc0) != 0x40)
			return TC_ACT_UNSPEC;
		__u16 cd_len = ((__u16)h.cd[2] << 8) | h.cd[3];
		if (cd_len > payload - CD_LEN || payload - CD_LEN - cd_len > 3)
			return TC_ACT_UNSPEC;
		__u16 pad = payload - CD_LEN - cd_len;
		struct chan_key k = {.client_ip = h.ip.saddr, .client_port = h.udp.source};
		__builtin_memcpy(&k.chan, h.cd, 2);
		struct chan_val *v = bpf_map_lookup_elem(&chan_fwd, &k);
		if (!v)
			return TC_ACT_UNSPEC;
		if (!spend(v->user, cd_len)) {
			__sync_fetch_and_add(&v->dropped, 1);
			return TC_ACT_SHOT;
		}
		// Remove the ChannelData header: 4 bytes after the IP header go,
		// then the 8-byte UDP header is written over what was the end of
		// the old one and the ChannelData header.
		if (bpf_skb_adjust_room(skb, -CD_LEN, BPF_ADJ_ROOM_NET, 0))
			return TC_ACT_UNSPEC;
		if (pad && bpf_skb_change_tail(skb, skb->len - pad, 0))
			return TC_ACT_SHOT; // the header is gone: nothing sensible to deliver
		if (rewrite(skb, &h.ip, v->relay_ip, v->peer_ip, v->relay_port, v->peer_port, udp_len - CD_LEN - pad))
			return TC_ACT_SHOT; // half rewritten: nothing sensible to deliver
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, cd_len);
		return deliver(skb);
	}

	struct peer_key pk = {.peer_ip = h.ip.saddr, .relay_ip = h.ip.daddr, .peer_port = h.udp.source,
			      .relay_port = h.udp.dest};
	struct peer_val *pv = bpf_map_lookup_elem(&peer_fwd, &pk);
	if (!pv || payload > 0xffff - sizeof(struct iphdr) - sizeof(struct udphdr) - CD_LEN)
		return TC_ACT_UNSPEC;
	if (mtu && sizeof(struct iphdr) + udp_len + CD_LEN > mtu)
		return TC_ACT_UNSPEC;
	if (!spend(pv->user, payload)) {
		__sync_fetch_and_add(&pv->dropped, 1);
		return TC_ACT_SHOT;
	}
	// Add a ChannelData header: 4 bytes after the IP header, the new UDP
	// header over them and the start of the old one, the ChannelData
	// header over the rest of the old one.
	if (bpf_skb_adjust_room(skb, CD_LEN, BPF_ADJ_ROOM_NET, 0))
		return TC_ACT_UNSPEC;
	__u8 cd[CD_LEN] = {0, 0, payload >> 8, payload & 0xff};
	__builtin_memcpy(cd, &pv->chan, 2);
	if (rewrite(skb, &h.ip, pv->listen_ip, pv->client_ip, pv->listen_port, pv->client_port, udp_len + CD_LEN) ||
	    bpf_skb_store_bytes(skb, UDP_OFF + sizeof(struct udphdr), cd, CD_LEN, 0))
		return TC_ACT_SHOT;
	__sync_fetch_and_add(&pv->packets, 1);
	__sync_fetch_and_add(&pv->bytes, payload);
	return deliver(skb);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
