package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// randomFile writes n random bytes to a file named name in a new temporary
// directory and returns its path and contents.
func randomFile(t testing.TB, name string, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// dirNames lists dir's entries (hidden ones too).
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// sameFile fails unless path holds want.
func sameFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %x; want %d bytes, sha256 %x", path, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// noPlaintext fails if any file under dir holds a 64-byte run of data
// (sampled every 64 KiB, at an odd offset).
func noPlaintext(t testing.TB, dir string, data []byte) {
	t.Helper()
	var probes [][]byte
	for off := 1000; off+64 <= len(data); off += 64 << 10 {
		probes = append(probes, data[off:off+64])
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range probes {
			if bytes.Contains(b, pr) {
				t.Fatalf("%s holds plaintext of the file", p)
			}
		}
		return nil
	})
}

// TestCLIFileToOfflineUser: 10 MB to a user who is offline arrives at
// their next login byte-identical, the signed hash checked, under its
// name; a file over the store's cap and a bad name are refused before any
// byte with one line, and leave nothing in the download directory; the login server's files hold no plaintext of it, before or
// after; the sender hears it arrived; both histories have its entry.
func TestCLIFileToOfflineUser(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	path, data := randomFile(t, "report.bin", 10<<20)

	out, errOut, code := runParley(t, alice, "send", "bob", path, "--json")
	if code != 0 {
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	sent := lastEvent(t, out, "file-sent")
	if sent["file_size"] != float64(len(data)) || sent["peer"] != "bob" || sent["file_stored"] != true {
		t.Fatalf("file-sent event: %v", sent)
	}
	if n := strings.Count(out, `"file-progress"`); n < 2 {
		t.Errorf("%d progress events, want some:\n%s", n, out)
	}
	noPlaintext(t, u.dataDir(), data)

	// Refused before any byte, with one line: over the store's cap (a
	// sparse file of 100 MiB + 1), a name that is no file name.
	big := filepath.Join(t.TempDir(), "big.iso")
	must(t, os.WriteFile(big, nil, 0o600))
	must(t, os.Truncate(big, 100<<20+1))
	badName := filepath.Join(t.TempDir(), "line\nbreak.txt")
	must(t, os.WriteFile(badName, []byte("x"), 0o600))
	for _, tt := range []struct{ path, want string }{
		{big, "file is too big: the login server stores files of up to its size cap"},
		{badName, "not a file name"},
	} {
		out, errOut, code := runParley(t, alice, "send", "bob", tt.path)
		if code != 1 || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 || strings.Contains(out, "sending") {
			t.Errorf("send %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", filepath.Base(tt.path), code, out, errOut, tt.want)
		}
	}

	dl := t.TempDir()
	aliceListen := start(t, alice, "listen", "--json")
	waitOnline(t, aliceListen)
	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	got := bobListen.waitEvents(t, "file", 1, 60*time.Second)[0]
	want := sha256.Sum256(data)
	if got["file_path"] != filepath.Join(dl, "report.bin") || got["file_hash"] != hex.EncodeToString(want[:]) || got["peer"] != "alice" {
		t.Fatalf("bob's file event: %v", got)
	}
	sameFile(t, filepath.Join(dl, "report.bin"), data)
	if names := dirNames(t, dl); len(names) != 1 {
		t.Errorf("download directory holds %v, want the file alone (nothing of the refused ones)", names)
	}
	aliceListen.waitEvents(t, "file-delivered", 1, 20*time.Second)

	// The history on both sides has the file's entry.
	out, _, _ = runParley(t, bob, "history", "alice")
	if !strings.Contains(out, "<alice> [file] report.bin (10.5 MB)") {
		t.Errorf("bob's history:\n%s", out)
	}
	// Fetched: the store holds it no longer.
	noPlaintext(t, u.dataDir(), data)
}

// dataDir is the --data directory of `parley up`: the login server's database.
func (u *upNet) dataDir() string { return u.args[2] }

// needRoot skips a test that mounts file systems unless it runs as root
// (with CI=true it fails instead).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test mounts a tmpfs: it needs root")
		}
		t.Skip("this test mounts a tmpfs: it needs root")
	}
}

// tmpfs mounts a tmpfs of size (mount's size=) on a new directory,
// unmounted at the end of the test.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestCLIFileFullDisk: a download directory that fills up stops the
// transfer with a clear, resumable error, and leaves only the partial
// file (no file under the name); once there is room the transfer goes on
// from what was on disk, not from zero.
func TestCLIFileFullDisk(t *testing.T) {
	dl := tmpfs(t, "2m")
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	path, data := randomFile(t, "big.bin", 3<<20)
	mustRun(t, alice, "sent big.bin (3.1 MB) to bob", "send", "bob", path)

	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	failed := bobListen.waitEvents(t, "file-failed", 1, 30*time.Second)[0]
	if failed["file_resumable"] != true || !strings.Contains(failed["file_error"].(string), "no space left on device") {
		t.Fatalf("file-failed event: %v", failed)
	}
	if names := dirNames(t, dl); len(names) != 1 || !strings.HasPrefix(names[0], ".parley-") || !strings.HasSuffix(names[0], ".part") {
		t.Fatalf("the full download directory holds %v, want the .part file alone", names)
	}
	bobListen.cmd.Process.Signal(os.Interrupt)
	bobListen.wait(t, 10*time.Second)

	// Room again; the next listen goes on from where the disk filled.
	if out, err := exec.Command("mount", "-o", "remount,size=8m", dl).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	bobAgain := start(t, bob, "listen", "--json", "--download-dir", dl)
	got := bobAgain.waitEvents(t, "file", 1, 30*time.Second)[0]
	sameFile(t, filepath.Join(dl, "big.bin"), data)
	if names := dirNames(t, dl); len(names) != 1 {
		t.Errorf("download directory holds %v, want big.bin alone", names)
	}
	// The first run had ~2 MB on disk: a resume fetches ~1 MB, not 3.
	if resent, _ := got["file_resent"].(float64); resent > 1<<20+100<<10 {
		t.Errorf("%v bytes fetched twice, want at most about 1 MiB (the chunks not yet recorded)", resent)
	}
}

// TestCLIFileResumesAfterKill: the receiver killed half way through a
// 20 MB file (SIGKILL: no chance to save anything) goes on at its next
// start from the last chunks it had recorded; the bytes fetched twice are
// counted and few.
func TestCLIFileResumesAfterKill(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	path, data := randomFile(t, "video.bin", 20<<20)
	mustRun(t, alice, "sent video.bin", "send", "bob", path)

	dl := t.TempDir()
	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	deadline := time.Now().Add(30 * time.Second)
	for half := false; !half; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no progress to half way in 30 s")
		}
		out, _ := bobListen.output()
		for _, ev := range jsonLines(t, out) {
			if ev["event"] == "file" {
				t.Fatal("the file arrived before the test could kill the receiver")
			}
			if b, _ := ev["file_bytes"].(float64); ev["event"] == "file-progress" && b >= 10<<20 {
				half = true
			}
		}
	}
	bobListen.cmd.Process.Kill()
	<-bobListen.done
	if _, err := os.Stat(filepath.Join(dl, "video.bin")); err == nil {
		t.Fatal("the file has its name before it was whole")
	}
	bobAgain := start(t, bob, "listen", "--json", "--download-dir", dl)
	got := bobAgain.waitEvents(t, "file", 1, 60*time.Second)[0]
	sameFile(t, filepath.Join(dl, "video.bin"), data)
	resent, _ := got["file_resent"].(float64)
	t.Logf("killed half way: %.0f bytes fetched twice", resent)
	if resent > 2<<20 {
		t.Errorf("%v bytes fetched twice, want at most 2 MiB", resent)
	}
	if firsts := bobAgain.events(t, "file-progress"); len(firsts) == 0 || firsts[0]["file_bytes"].(float64) < 8<<20 {
		t.Errorf("the second run did not start from half way: %v", firsts)
	}
}

// waitProgress waits until p printed a file-progress event of the file
// name with at least bytes, polling often (a transfer on loopback is
// quick), and fails if the file arrived first.
func waitProgress(t *testing.T, p *proc, name string, bytes float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		out, _ := p.output()
		for _, ev := range jsonLines(t, out) {
			if ev["file_name"] != name {
				continue
			}
			if ev["event"] == "file" {
				t.Fatal("the file arrived before the test could cut the transfer")
			}
			if b, _ := ev["file_bytes"].(float64); ev["event"] == "file-progress" && b >= bytes {
				return
			}
		}
	}
	t.Fatalf("no progress to %.0f bytes in 30 s", bytes)
}

// TestCLIFileDirect: 10 MB CLI to CLI while both are online goes over a
// data channel between the two (route direct), never through the login
// server, and arrives byte-identical with the signed hash checked.
func TestCLIFileDirect(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	path, data := randomFile(t, "song.bin", 10<<20)
	dl := t.TempDir()
	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	waitOnline(t, bobListen)

	out, errOut, code := runParley(t, alice, "send", "bob", path, "--json")
	if code != 0 {
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	if sent := lastEvent(t, out, "file-sent"); sent["file_route"] != "direct" || sent["file_stored"] != nil {
		t.Fatalf("file-sent event: %v", sent)
	}
	got := bobListen.waitEvents(t, "file", 1, 30*time.Second)[0]
	want := sha256.Sum256(data)
	if got["file_route"] != "direct" || got["file_hash"] != hex.EncodeToString(want[:]) {
		t.Fatalf("bob's file event: %v", got)
	}
	sameFile(t, filepath.Join(dl, "song.bin"), data)
	noPlaintext(t, u.dataDir(), data)
}

// TestCLIFileDirectCut: the receiver killed half way through a direct
// transfer (the connection cut, and its end restarted) gets the rest over
// a new connection the sender makes, from the last chunk it recorded; the
// bytes sent twice are counted and few.
func TestCLIFileDirectCut(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	path, data := randomFile(t, "movie.bin", 20<<20)
	dl := t.TempDir()
	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	waitOnline(t, bobListen)

	send := start(t, alice, "send", "bob", path, "--json")
	waitProgress(t, bobListen, "movie.bin", 10<<20)
	bobListen.cmd.Process.Kill()
	<-bobListen.done
	bobAgain := start(t, bob, "listen", "--json", "--download-dir", dl)
	got := bobAgain.waitEvents(t, "file", 1, 60*time.Second)[0]
	if code := send.wait(t, 30*time.Second); code != 0 {
		out, errOut := send.output()
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	sameFile(t, filepath.Join(dl, "movie.bin"), data)
	out, _ := send.output()
	sent := lastEvent(t, out, "file-sent")
	resent, _ := sent["file_resent"].(float64)
	fetched, _ := got["file_resent"].(float64)
	t.Logf("cut half way: the sender sent %.0f bytes twice, the receiver took %.0f twice", resent, fetched)
	if sent["file_route"] != "direct" || got["file_route"] != "direct" {
		t.Errorf("routes: sent %v, received %v; want direct", sent["file_route"], got["file_route"])
	}
	// What was in flight when the receiver died (the sender's buffer, the
	// chunks not yet recorded) goes twice; not the half that was on disk.
	if resent > 4<<20 || fetched > 2<<20 {
		t.Errorf("%.0f bytes sent twice, %.0f received twice; want at most 4 MiB and 2 MiB", resent, fetched)
	}
	if firsts := bobAgain.events(t, "file-progress"); len(firsts) == 0 || firsts[0]["file_bytes"].(float64) < 8<<20 {
		t.Errorf("the second run did not start from half way: %v", firsts)
	}
}

// TestBotSendsFile: the bot's send command sends a file (through the store
// to an offline user), its result naming the file; a bad one is an error
// of that command.
func TestBotSendsFile(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	path, data := randomFile(t, "notes.txt", 200<<10)
	b := startBot(t, envs["alice"])
	waitOnline(t, b.proc)
	res := b.do(t, map[string]any{"cmd": "send", "peer": "bob", "file": path})
	want := sha256.Sum256(data)
	if res["file_name"] != "notes.txt" || res["file_hash"] != hex.EncodeToString(want[:]) || res["stored"] != true || res["peer"] != "bob" {
		t.Errorf("send result: %v", res)
	}
	if ev := b.send(t, map[string]any{"cmd": "send", "peer": "bob", "file": filepath.Join(t.TempDir(), "missing")}); ev["event"] != "error" {
		t.Errorf("sending a missing file: %v", ev)
	}
	dl := t.TempDir()
	bob := start(t, envs["bob"], "listen", "--json", "--download-dir", dl)
	bob.waitEvents(t, "file", 1, 30*time.Second)
	sameFile(t, filepath.Join(dl, "notes.txt"), data)
}

// TestCLIFileSurvivesServerCrash: the login server and supernode crash
// (SIGKILL) during transfers. A direct transfer does not need them and
// finishes; a fetch from the store stops, and goes on from where it
// stopped, in the same run of the receiver, once they are back.
func TestCLIFileSurvivesServerCrash(t *testing.T) {
	u := startUp(t)
	envs := chatUsers(t, u.loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]

	// Through the store: bob fetches while the servers die.
	stored, storedData := randomFile(t, "stored.bin", 30<<20)
	mustRun(t, alice, "sent stored.bin", "send", "bob", stored)
	dl := t.TempDir()
	bobListen := start(t, bob, "listen", "--json", "--download-dir", dl)
	waitProgress(t, bobListen, "stored.bin", 8<<20)
	u.crash()
	time.Sleep(time.Second)
	u.restart()
	got := bobListen.waitEvents(t, "file", 1, 60*time.Second)[0]
	sameFile(t, filepath.Join(dl, "stored.bin"), storedData)
	if failed := bobListen.events(t, "file-failed"); len(failed) == 0 || failed[0]["file_resumable"] != true {
		t.Errorf("file-failed events while the server was down: %v", failed)
	}
	if fetched, _ := got["file_resent"].(float64); fetched > 1<<20 {
		t.Errorf("%.0f bytes fetched twice, want at most the one chunk in flight", fetched)
	}

	// Directly: the servers die half way; the data channel goes on.
	waitOnline(t, bobListen)
	direct, directData := randomFile(t, "direct.bin", 40<<20)
	send := start(t, alice, "send", "bob", direct, "--json")
	waitProgress(t, bobListen, "direct.bin", 10<<20)
	u.crash()
	got = bobListen.waitEvents(t, "file", 2, 60*time.Second)[1]
	if code := send.wait(t, 30*time.Second); code != 0 {
		out, errOut := send.output()
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	sameFile(t, filepath.Join(dl, "direct.bin"), directData)
	if got["file_route"] != "direct" {
		t.Errorf("bob's file event: %v", got)
	}
	u.restart()
}
