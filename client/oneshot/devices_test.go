package oneshot_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/testnet"
	"github.com/parley/parley/wire/loginapi"
)

func TestMatchDevice(t *testing.T) {
	key := func(b ...byte) ed25519.PublicKey { return append(bytes.Repeat([]byte{0}, 32-len(b)), b...) }
	a, b, c := key(1), key(2), key(0xff, 0) // base64url AAAA…AAE, AAAA…AAI, AAAA…AP8A
	list := []loginapi.MyDevice{{Key: a}, {Key: b}, {Key: c}}
	full := loginapi.DeviceKeyString(a)
	for _, tt := range []struct {
		prefix string
		want   ed25519.PublicKey
		err    error
	}{
		{full, a, nil},
		{loginapi.DeviceKeyString(c)[:41], c, nil},
		{"AAAAAAAA", nil, oneshot.ErrAmbiguousDevice},
		{"BBBBBBBB", nil, loginapi.ErrUnknownDevice},
		{full + "A", nil, loginapi.ErrUnknownDevice},
	} {
		d, err := oneshot.MatchDevice(list, tt.prefix)
		if !errors.Is(err, tt.err) || !d.Key.Equal(tt.want) && tt.want != nil {
			t.Errorf("MatchDevice(%s): %x %v, want %x %v", tt.prefix, d.Key, err, tt.want, tt.err)
		}
	}
	if _, err := oneshot.MatchDevice(list, "AAAAAAAA"); err == nil || !strings.Contains(err.Error(), "3 of your devices") {
		t.Errorf("ambiguous: %v, want it to say how many", err)
	}
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"abcdefgh", true}, {"aB3-_xyz9", true}, {full, true},
		{"abcdefg", false}, {full + "A", false}, {"abcdefg+", false}, {"abcd/efgh", false}, {"abcdefg=", false}, {"", false},
	} {
		if err := oneshot.CheckDeviceKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("CheckDeviceKey(%q): %v, want ok %v", tt.key, err, tt.ok)
		}
	}
	if err := oneshot.CheckDeviceKey(); err != nil {
		t.Errorf("CheckDeviceKey(): %v", err)
	}
}

// TestRemoveDevice: two devices of alice; one removes the other by a
// prefix of its key, which is then refused; removing itself needs self;
// a password login brings a device back.
func TestRemoveDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loginURL := testnet.Start(t, testnet.Config{NoSupernode: true})
	c1 := testnet.Register(t, ctx, loginURL, "alice")
	c2, err := client.New(client.Config{Home: t.TempDir(), LoginURL: loginURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := oneshot.Login(ctx, c2, "alice", "password-alice", false); err != nil {
		t.Fatal(err)
	}
	if err := oneshot.Login(ctx, c2, "alice", "password-alice", true); !errors.Is(err, loginapi.ErrUserExists) {
		t.Errorf("Login with register for a taken name: %v, want ErrUserExists", err)
	}
	list, err := c1.Devices(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Devices: %+v %v", list, err)
	}
	for _, d := range list {
		if d.Self != d.Key.Equal(c1.PublicKey()) || !d.Encryption {
			t.Errorf("device %+v: self and encryption wrong", d)
		}
	}
	k1, k2 := loginapi.DeviceKeyString(c1.PublicKey()), loginapi.DeviceKeyString(c2.PublicKey())

	if _, err := oneshot.RemoveDevice(ctx, c1, k1[:8], false); !errors.Is(err, oneshot.ErrThisDevice) {
		t.Errorf("removing this device without self: %v, want ErrThisDevice", err)
	}
	if _, err := oneshot.RemoveDevice(ctx, c1, k1[:7], false); err == nil {
		t.Error("a 7-character prefix was taken")
	}
	d, err := oneshot.RemoveDevice(ctx, c1, k2[:9], false)
	if err != nil || !d.Key.Equal(c2.PublicKey()) || d.Self {
		t.Fatalf("RemoveDevice(c2): %+v %v", d, err)
	}
	if _, err := c2.Devices(ctx); !errors.Is(err, loginapi.ErrDeviceRemoved) {
		t.Errorf("the removed device lists: %v, want ErrDeviceRemoved", err)
	}
	if _, err := oneshot.RemoveDevice(ctx, c1, k2[:9], false); !errors.Is(err, loginapi.ErrUnknownDevice) {
		t.Errorf("removing it again: %v, want ErrUnknownDevice", err)
	}
	if err := c1.RemoveDevice(ctx, c2.PublicKey()); !errors.Is(err, loginapi.ErrUnknownDevice) || !strings.Contains(err.Error(), k2[:12]) {
		t.Errorf("client RemoveDevice of a removed device: %v, want ErrUnknownDevice naming it", err)
	}
	if err := oneshot.Login(ctx, c2, "alice", "password-alice", false); err != nil {
		t.Fatalf("password login on the removed device: %v", err)
	}
	if list, err := c2.Devices(ctx); err != nil || len(list) != 2 {
		t.Errorf("after the password login: %+v %v", list, err)
	}
	if d, err := oneshot.RemoveDevice(ctx, c2, k2, true); err != nil || !d.Self {
		t.Errorf("removing itself with self: %+v %v", d, err)
	}
	if list, err := c1.Devices(ctx); err != nil || len(list) != 1 || !list[0].Self {
		t.Errorf("c1's devices at the end: %+v %v", list, err)
	}
}
