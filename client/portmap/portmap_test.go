package portmap

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRoutes(t *testing.T) {
	for _, c := range []struct {
		name, table string
		want        string
		wantErr     error
	}{
		{"default route", "Iface\tDestination\tGateway \tFlags\nlan\t0000000A\t00000000\t0001\neth0\t00000000\t0100000A\t0003\n", "10.0.0.1", nil},
		{"lab host", "Iface\tDestination\tGateway\neth0\t00000000\t0100010A\t0003\n", "10.1.0.1", nil},
		{"no default route", "Iface\tDestination\tGateway\neth0\t0000000A\t00000000\t0001\n", "", ErrNoGateway},
		{"empty", "", "", ErrNoGateway},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseRoutes(bufio.NewScanner(strings.NewReader(c.table)))
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if c.want != "" && got != netip.MustParseAddr(c.want) {
				t.Errorf("got %v, want %s", got, c.want)
			}
		})
	}
}

func TestUseful(t *testing.T) {
	m := Mapping{Protocol: NATPMP, External: netip.MustParseAddrPort("198.18.0.11:40000"), InternalPort: 40000}
	for _, c := range []struct {
		name string
		seen string
		ok   bool
	}{
		{"the address the internet sees", "198.18.0.11", true},
		{"the same, IPv4-mapped", "::ffff:198.18.0.11", true},
		{"behind a carrier NAT", "198.18.0.20", false},
		{"nobody saw this host", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seen netip.Addr
			if c.seen != "" {
				seen = netip.MustParseAddr(c.seen)
			}
			err := Useful(m, seen)
			if got := err == nil; got != c.ok {
				t.Errorf("Useful = %v, want ok %v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrUseless) {
				t.Errorf("err %v is not ErrUseless", err)
			}
		})
	}
}

// fakeIGD is a UPnP router that records what it is asked.
type fakeIGD struct {
	mu              sync.Mutex
	adds, deletes   int
	lease           uint32
	onlyPermanent   bool
	external        string
	lastExt, lastIn uint16
}

func (f *fakeIGD) AddPortMappingCtx(_ context.Context, _ string, ext uint16, proto string, in uint16, _ string, _ bool, _ string, lease uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onlyPermanent && lease != 0 {
		return errors.New("UPnPError 725 OnlyPermanentLeasesSupported")
	}
	f.adds++
	f.lease, f.lastExt, f.lastIn = lease, ext, in
	return nil
}

func (f *fakeIGD) DeletePortMappingCtx(context.Context, string, uint16, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return nil
}

func (f *fakeIGD) GetExternalIPAddressCtx(context.Context) (string, error) { return f.external, nil }

func (f *fakeIGD) counts() (adds, deletes int, lease uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.adds, f.deletes, f.lease
}

// TestKeepRenewsAndDeletes: a UPnP mapping is renewed at half its lifetime
// while kept, and deleted when the keeping ends.
func TestKeepRenewsAndDeletes(t *testing.T) {
	f := &fakeIGD{external: "198.18.0.11"}
	c := New(Config{Lifetime: time.Second})
	m, err := c.addUPnP(context.Background(), f, "10.1.0.2", 4000, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if m.External != netip.MustParseAddrPort("198.18.0.11:4000") || m.Lifetime != time.Second || m.Protocol != UPnP {
		t.Fatalf("mapping %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1300*time.Millisecond)
	defer cancel()
	c.Keep(ctx, m, nil) // renews at 0.5 s and 1 s, deletes at 1.3 s
	adds, deletes, _ := f.counts()
	if adds != 3 || deletes != 1 {
		t.Errorf("%d adds, %d deletes; want 3 (the mapping and two renewals) and 1", adds, deletes)
	}
}

// TestUPnPPermanentLeases: a router that takes only permanent leases (error
// 725) gets one.
func TestUPnPPermanentLeases(t *testing.T) {
	f := &fakeIGD{external: "198.18.0.11", onlyPermanent: true}
	c := New(Config{})
	m, err := c.addUPnP(context.Background(), f, "10.1.0.2", 4000, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, lease := f.counts(); lease != 0 || m.Lifetime != 0 {
		t.Errorf("lease %d, lifetime %v; want a permanent one", lease, m.Lifetime)
	}
}
