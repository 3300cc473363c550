package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/login"
)

// writeRandom writes n random bytes to dir/name and returns them.
func writeRandom(t testing.TB, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	must(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	return b
}

// waitFile waits for the n-th "file" event and returns it.
func (e *events) waitFile(t testing.TB, n int, d time.Duration) client.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		k := 0
		for _, ev := range e.all {
			if ev.Event == client.EventFile {
				if k++; k == n {
					e.mu.Unlock()
					return ev
				}
			}
		}
		e.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no file event %d after %v", n, d)
	return client.Event{}
}

// TestFileRefusedBeforeAnyByte: a file over the login server's size cap,
// one over the sender's quota, a name that names more than a file, an
// empty file and a directory are refused with their error before any
// byte of them goes to the login server.
func TestFileRefusedBeforeAnyByte(t *testing.T) {
	n := startNetworkWith(t, nil, login.Config{MaxStoredFile: 1 << 20, FileQuotaPerUser: 3 << 19})
	a, b := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, a, "alice", b, "bob")
	alice := a.online(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	writeRandom(t, dir, "big.bin", 1<<20+1)
	writeRandom(t, dir, "first.bin", 1<<20)
	writeRandom(t, dir, "second.bin", 1<<20)
	writeRandom(t, dir, "bad\x01name", 100)
	writeRandom(t, dir, "empty", 0)
	must(t, os.Mkdir(filepath.Join(dir, "adir"), 0o700))

	if _, err := alice.SendFile(ctx, "bob", filepath.Join(dir, "first.bin"), client.SendFileConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		want error
	}{
		{"big.bin", im.ErrFileTooBig},    // over the store's cap
		{"second.bin", im.ErrFileTooBig}, // over alice's quota, with first.bin stored
		{"bad\x01name", im.ErrBadFileName},
		{"empty", client.ErrNotAFile},
		{"adir", client.ErrNotAFile},
		{"missing", os.ErrNotExist},
	} {
		before, progress := n.loginIn.Load(), a.ev.count(client.EventFileProgress)
		_, err := alice.SendFile(ctx, "bob", filepath.Join(dir, tt.name), client.SendFileConfig{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%q: %v, want %v", tt.name, err, tt.want)
		}
		if sent := n.loginIn.Load() - before; sent > 4<<10 || a.ev.count(client.EventFileProgress) != progress {
			t.Errorf("%q: %d bytes went to the login server and %d progress events before the refusal", tt.name, sent, a.ev.count(client.EventFileProgress)-progress)
		}
	}
	if _, err := alice.SendFile(ctx, "nobody", filepath.Join(dir, "first.bin"), client.SendFileConfig{}); !errors.Is(err, client.ErrUnknownUser) {
		t.Errorf("to an unknown user: %v", err)
	}
}

// TestFileToGroupKeepsExistingFiles: a file to a group reaches every
// other member byte-identical; a member whose download directory holds a
// file of that name keeps it, and gets the new one beside it.
func TestFileToGroupKeepsExistingFiles(t *testing.T) {
	n := startNetwork(t, nil)
	a, b, c := newIMUser(t, n, "alice"), newIMUser(t, n, "bob"), newIMUser(t, n, "carol")
	befriend(t, a, "alice", b, "bob")
	befriend(t, a, "alice", c, "carol")
	alice, bob, carol := a.online(t), b.online(t), c.online(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := alice.CreateGroup(ctx, "team", []string{"bob", "carol"})
	must(t, err)
	src := t.TempDir()
	data := writeRandom(t, src, "photo.jpg", 300<<10)
	bobDir, carolDir := t.TempDir(), t.TempDir()
	old := []byte("bob's own photo")
	must(t, os.WriteFile(filepath.Join(bobDir, "photo.jpg"), old, 0o600))
	must(t, bob.ReceiveFiles(client.FileConfig{Dir: bobDir}))
	must(t, carol.ReceiveFiles(client.FileConfig{Dir: carolDir}))
	waitUntil(t, "the group reaches bob and carol", 10*time.Second, func() bool { return b.ev.count("group") > 0 && c.ev.count("group") > 0 })

	res, err := alice.SendFile(ctx, g.ID, filepath.Join(src, "photo.jpg"), client.SendFileConfig{Group: true})
	must(t, err)
	if res.Recipients != 2 || res.Group != g.ID || res.Type != "image/jpeg" {
		t.Fatalf("send result: %+v", res)
	}
	for _, r := range []struct {
		ev   *events
		dir  string
		name string
	}{{b.ev, bobDir, "photo (1).jpg"}, {c.ev, carolDir, "photo.jpg"}} {
		ev := r.ev.waitFile(t, 1, 20*time.Second)
		if ev.FileEvent.Path != filepath.Join(r.dir, r.name) || ev.Peer != im.GroupPeer(g.ID) || ev.FileEvent.Group != g.ID {
			t.Errorf("file event: peer %s %+v, want %s", ev.Peer, ev.FileEvent, filepath.Join(r.dir, r.name))
		}
		got, err := os.ReadFile(filepath.Join(r.dir, r.name))
		must(t, err)
		if !bytes.Equal(got, data) {
			t.Errorf("%s: not the file sent", r.name)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(bobDir, "photo.jpg")); !bytes.Equal(got, old) {
		t.Errorf("bob's own photo.jpg was overwritten")
	}
	hist, err := bob.GroupHistory(g.ID, 0)
	must(t, err)
	if len(hist) == 0 || hist[len(hist)-1].Text != "[file] photo.jpg (307.2 KB)" || hist[len(hist)-1].From != "alice" {
		t.Errorf("bob's group history: %+v", hist)
	}
}

// TestFileDirect: to a recipient online and receiving files, a file goes
// over a data channel between the two devices, not through the store, and
// arrives byte-identical.
func TestFileDirect(t *testing.T) {
	n := startNetwork(t, nil)
	a, b := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, a, "alice", b, "bob")
	alice, bob := a.online(t), b.online(t)
	dir := t.TempDir()
	must(t, bob.ReceiveFiles(client.FileConfig{Dir: dir}))
	src := t.TempDir()
	data := writeRandom(t, src, "clip.bin", 3<<20+5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := n.loginIn.Load()
	res, err := alice.SendFile(ctx, "bob", filepath.Join(src, "clip.bin"), client.SendFileConfig{})
	must(t, err)
	if res.Route != client.RouteDirect || res.Stored {
		t.Errorf("send result: %+v, want direct, not stored", res.FileEvent)
	}
	ev := b.ev.waitFile(t, 1, 20*time.Second)
	if ev.FileEvent.Route != client.RouteDirect {
		t.Errorf("bob's file event: %+v", ev.FileEvent)
	}
	got, err := os.ReadFile(filepath.Join(dir, "clip.bin"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatal("not the file sent")
	}
	if up := n.loginIn.Load() - before; up > 64<<10 {
		t.Errorf("%d bytes went to the login server for a direct transfer", up)
	}
}

// TestFileUploadResumes: a send stopped half way through its upload to
// the store (the sender's program ended) goes on, when sent again, from
// the first chunk the store lacks; the file arrives whole.
func TestFileUploadResumes(t *testing.T) {
	n := startNetwork(t, nil)
	a, b := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, a, "alice", b, "bob")
	alice := a.online(t)
	src := t.TempDir()
	data := writeRandom(t, src, "big.bin", 16<<20)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			a.ev.mu.Lock()
			for _, ev := range a.ev.all {
				if ev.Event == client.EventFileProgress && ev.FileEvent.Bytes >= 8<<20 {
					cancel()
				}
			}
			a.ev.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := alice.SendFile(ctx, "bob", filepath.Join(src, "big.bin"), client.SendFileConfig{}); err == nil {
		t.Fatal("the upload finished before the test could stop it")
	}
	cancel()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	res, err := alice.SendFile(ctx2, "bob", filepath.Join(src, "big.bin"), client.SendFileConfig{})
	must(t, err)
	if res.Resumed < 8<<20 || res.Resumed >= 16<<20 {
		t.Errorf("resumed after %d bytes, want from half way", res.Resumed)
	}
	bob := b.online(t)
	dir := t.TempDir()
	must(t, bob.ReceiveFiles(client.FileConfig{Dir: dir}))
	b.ev.waitFile(t, 1, 20*time.Second)
	got, err := os.ReadFile(filepath.Join(dir, "big.bin"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatal("not the file sent")
	}
}
