package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The page's files (docs/files.md, "The page"): js/files.js against the Go
// client's sender and receiver.

// pageFile is what the page's test hook says of a file it received whole.
type pageFile struct {
	Name   string  `json:"name"`
	Size   float64 `json:"size"`
	Hash   string  `json:"hash"`
	Resent float64 `json:"resent"`
	Route  string  `json:"route"`
	// Sum is the SHA-256 of the Blob the page offers to save, computed
	// anew in the page.
	Sum string `json:"sum"`
}

// pageReceived waits until the page has file name whole and returns it.
func (b *browser) pageReceived(name string, d time.Duration) pageFile {
	b.t.Helper()
	b.waitFor(name+" received on the page", fmt.Sprintf(`window.parley.files?.received().some((f) => f.name === %q)`, name), d)
	return eval[pageFile](b, fmt.Sprintf(`(async () => {
		const files = window.parley.files;
		const f = files.received().find((f) => f.name === %[1]q);
		const v = [...files.views.values()].find((v) => v.dir === "in" && v.name === %[1]q && v.status === "done");
		const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", await v.blob.arrayBuffer()));
		return { ...f, sum: Array.from(sum, (x) => x.toString(16).padStart(2, "0")).join("") };
	})()`, name), 20*time.Second)
}

// TestBrowserFile: 10 MB from the CLI to the page and 10 MB from the page
// to the CLI, each directly over a data channel, each cut by the page at
// about half way (it closes the connection): the sender connects again and
// the receiver pulls from its first missing chunk, so only what was in
// flight goes twice; each arrives byte-identical, the signed hash checked.
// Then a file to the page while it is signed out goes through the login
// server's store and arrives when it signs in again.
func TestBrowserFile(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	bob := cliUser(t, loginURL, "bob")
	_, wav := micWAV(t, 71)
	b := newBrowser(t, wav)
	b.watchCSP()
	b.signUp(loginURL, "alice", "alice-password")
	cliContacts(t, b, bob, "bob", "alice")
	dl := t.TempDir()
	listener := start(t, bob, "listen", "--json", "--download-dir", dl)
	waitOnline(t, listener)
	b.click("Chat with bob")
	const size = 10 << 20

	// CLI → page, cut by the page once it holds 5 MiB.
	path, data := randomFile(t, "from-cli.bin", size)
	sum := sha256.Sum256(data)
	eval[bool](b, `(window.parley.files.test.cutAt = 5 << 20, true)`, 5*time.Second)
	t0 := time.Now()
	send := start(t, bob, "send", "alice", path, "--json")
	got := b.pageReceived("from-cli.bin", 60*time.Second)
	took := time.Since(t0)
	if code := send.wait(t, 30*time.Second); code != 0 {
		out, errOut := send.output()
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _ := send.output()
	sent := lastEvent(t, out, "file-sent")
	cliResent, _ := sent["file_resent"].(float64)
	t.Logf("CLI → page: %v (noisy), cut once at 5 MiB; the CLI sent %.0f bytes twice, the page took %.0f twice", took.Round(time.Millisecond), cliResent, got.Resent)
	if got.Hash != hex.EncodeToString(sum[:]) || got.Sum != got.Hash || got.Size != size {
		t.Errorf("the page's file: %+v; want %d bytes, sha256 %x", got, size, sum)
	}
	if cuts := eval[float64](b, `window.parley.files.test.cuts`, 5*time.Second); cuts != 1 {
		t.Errorf("the page cut %v connections, want 1 (the file came before the cut?)", cuts)
	}
	if sent["file_route"] != "direct" || got.Route != "direct" {
		t.Errorf("routes: sent %v, received %v; want direct", sent["file_route"], got.Route)
	}
	// Only what was in flight goes twice — what the CLI had sent and the
	// page had not taken when it cut (seen: 0.7–2.6 MB), never the half
	// the page held: it asked from there.
	if cliResent >= 5<<20 || got.Resent > 2<<20 {
		t.Errorf("%.0f bytes sent twice, %.0f received twice; want under 5 MiB and at most 2 MiB (what was in flight)", cliResent, got.Resent)
	}
	if wants := eval[[]float64](b, `window.parley.files.test.wants`, 5*time.Second); len(wants) != 2 || wants[0] != 0 || wants[1] < 64 {
		t.Errorf("the page asked from chunks %v, want 0, then from where it stopped (64 or later)", wants)
	}
	b.waitFor("the file's card to offer it", `[...document.querySelectorAll(".file-card")].some((c) => `+
		`c.querySelector(".file-name").textContent === "from-cli.bin" && c.dataset.status === "done" && `+
		`!c.querySelector("a.file-save").hidden && c.querySelector("a.file-save").download === "from-cli.bin")`, 10*time.Second)
	if n := eval[float64](b, chatLine("bob", "[file] from-cli.bin (10.5 MB)"), 5*time.Second); n != 1 {
		t.Errorf("the file's entry shows %v times in the conversation, want once", n)
	}
	// The sender hears it arrived.
	listener.waitEvents(t, "file-delivered", 1, 20*time.Second)

	// Page → CLI, cut by the page once it has sent 5 MiB.
	path2, data2 := randomFile(t, "from-page.bin", size)
	eval[bool](b, `(window.parley.files.test.cutAt = 5 << 20, window.parley.files.test.cuts = 0, true)`, 5*time.Second)
	t0 = time.Now()
	b.do("choose the file", 10*time.Second, chromedp.SetUploadFiles(`#file-input`, []string{path2}))
	ev := listener.waitEvents(t, "file", 1, 60*time.Second)[0]
	took = time.Since(t0)
	sameFile(t, filepath.Join(dl, "from-page.bin"), data2)
	sum2 := sha256.Sum256(data2)
	fetched, _ := ev["file_resent"].(float64)
	t.Logf("page → CLI: %v (noisy), cut once at 5 MiB; the CLI took %.0f bytes twice", took.Round(time.Millisecond), fetched)
	if ev["file_hash"] != hex.EncodeToString(sum2[:]) || ev["file_route"] != "direct" || ev["peer"] != "alice" {
		t.Errorf("bob's file event: %v", ev)
	}
	if cuts := eval[float64](b, `window.parley.files.test.cuts`, 5*time.Second); cuts != 1 {
		t.Errorf("the page cut %v connections, want 1", cuts)
	}
	if fetched > 2<<20 {
		t.Errorf("%.0f bytes received twice, want at most 2 MiB (what was in flight)", fetched)
	}
	b.waitFor("the page to mark its file delivered", `[...document.querySelectorAll(".file-card")].some((c) => `+
		`c.querySelector(".file-name").textContent === "from-page.bin" && c.dataset.status === "delivered")`, 20*time.Second)
	pageResent := eval[float64](b, `[...window.parley.files.outs.values()].find((o) => o.offer.name === "from-page.bin").resent`, 5*time.Second)
	t.Logf("the page sent %.0f bytes twice", pageResent)
	if pageResent > 4<<20 {
		t.Errorf("the page sent %.0f bytes twice, want at most 4 MiB", pageResent)
	}

	// A picture to the page while it is signed out: through the store,
	// fetched at the next sign-in, and shown. alice has a second device, a
	// CLI home (logged in, not listening): it fetches the picture from the
	// store too, after the page took it.
	alice2 := userEnv(t, loginURL, "alice-password")
	mustRun(t, alice2, "alice", "login", "alice")
	path3, data3 := noisePNG(t, "photo.png", 600, 400)
	b.click("Sign out")
	b.waitFor("the sign-in form", `!document.getElementById("auth").hidden`, 10*time.Second)
	if out, errOut, code := runParley(t, bob, "send", "alice", path3, "--json"); code != 0 {
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	} else if ev := lastEvent(t, out, "file-sent"); ev["file_stored"] != true {
		t.Fatalf("file-sent event: %v (want stored: alice is offline)", ev)
	}
	b.signIn("alice", "alice-password")
	b.waitOnline("alice online again")
	b.click("Chat with bob")
	got = b.pageReceived("photo.png", 30*time.Second)
	sum3 := sha256.Sum256(data3)
	if got.Hash != hex.EncodeToString(sum3[:]) || got.Sum != got.Hash || got.Route != "store" {
		t.Errorf("the page's stored file: %+v; want sha256 %x through the store", got, sum3)
	}
	t.Logf("photo.png (%d bytes) came through the store", len(data3))
	// The picture shows, whole, in its card (a blob: URL the page's CSP allows).
	b.waitFor("the picture in the conversation", `[...document.querySelectorAll(".file-card img")].some((img) => `+
		`img.alt === "Picture photo.png" && !img.hidden && img.complete && img.naturalWidth === 600 && img.naturalHeight === 400)`, 10*time.Second)
	b.noCSPViolation("a conversation with files and a picture")
	b.axe(axeSource(t), "a conversation with files and a picture")
	b.shots("files", "")
	listener.waitEvents(t, "file-delivered", 2, 20*time.Second)
	dl2 := t.TempDir()
	second := start(t, alice2, "listen", "--json", "--download-dir", dl2)
	if ev := second.waitEvents(t, "file", 1, 30*time.Second)[0]; ev["file_route"] != "store" || ev["file_name"] != "photo.png" {
		t.Errorf("alice's second device: %v", ev)
	}
	sameFile(t, filepath.Join(dl2, "photo.png"), data3)
	second.cmd.Process.Signal(os.Interrupt) // not a device that answers the next files' connections
	second.wait(t, 10*time.Second)

	// The page reloaded half way through 10 MB from the CLI: the chunks it
	// had are in IndexedDB; signed in again by itself, it answers the
	// sender's next connection and pulls from its first missing chunk.
	path4, data4 := randomFile(t, "reload.bin", size)
	sum4 := sha256.Sum256(data4)
	eval[bool](b, `(window.parley.files.test.cutAt = 5 << 20, window.parley.files.test.reload = true, true)`, 5*time.Second)
	t0 = time.Now()
	send = start(t, bob, "send", "alice", path4, "--json")
	got = b.pageReceived("reload.bin", 60*time.Second)
	took = time.Since(t0)
	if code := send.wait(t, 30*time.Second); code != 0 {
		out, errOut := send.output()
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	out, _ = send.output()
	sent = lastEvent(t, out, "file-sent")
	cliResent, _ = sent["file_resent"].(float64)
	t.Logf("CLI → page reloaded at 5 MiB: %v (noisy); the CLI sent %.0f bytes twice", took.Round(time.Millisecond), cliResent)
	if got.Hash != hex.EncodeToString(sum4[:]) || got.Sum != got.Hash || got.Size != size {
		t.Errorf("the page's file: %+v; want %d bytes, sha256 %x", got, size, sum4)
	}
	// The reloaded page asked for the file from where its storage ended
	// (at least the 5 MiB it held when it went), not from zero.
	wants := eval[[]float64](b, `window.parley.files.test.wants`, 5*time.Second)
	t.Logf("the reloaded page asked from chunk %v (64 KiB each)", wants)
	if len(wants) == 0 || wants[0] < 80 {
		t.Errorf("the reloaded page asked from chunks %v, want from 80 (5 MiB) or later", wants)
	}
	if sent["file_route"] != "direct" || cliResent > 6<<20 {
		t.Errorf("file-sent: %v; want direct, at most 6 MiB sent twice", sent)
	}

	// A group: the page's file goes to the other members through the
	// store, and a member's file from the CLI comes to the page.
	b.click("New group")
	b.waitFor("the new group dialog", `document.getElementById("new-group").open`, 5*time.Second)
	b.typeInto("Group name", "Club")
	b.click("bob")
	b.click("Create group")
	b.waitFor("the group's conversation", `!document.getElementById("conv").hidden && document.getElementById("chat-h").textContent === "Club"`, 20*time.Second)
	id := eval[string](b, `[...window.parley.groups().values()].find((g) => g.name === "Club").id`, 5*time.Second)
	groupEvent(t, listener, id, "create", "")
	path5, data5 := randomFile(t, "minutes.txt", 300<<10)
	b.do("choose the file", 10*time.Second, chromedp.SetUploadFiles(`#file-input`, []string{path5}))
	ev = listener.waitEvents(t, "file", 2, 30*time.Second)[1]
	sameFile(t, filepath.Join(dl, "minutes.txt"), data5)
	if ev["file_group"] != id || ev["file_route"] != "store" {
		t.Errorf("bob's file event for the group's file: %v", ev)
	}
	path6, data6 := randomFile(t, "agenda.txt", 200<<10)
	mustRun(t, bob, `"file_stored":true`, "send", "--group", "Club", path6, "--json")
	got = b.pageReceived("agenda.txt", 30*time.Second)
	sum6 := sha256.Sum256(data6)
	if got.Hash != hex.EncodeToString(sum6[:]) || got.Sum != got.Hash || got.Route != "store" {
		t.Errorf("the page's group file: %+v; want sha256 %x through the store", got, sum6)
	}
	t.Logf("the group's files: minutes.txt from the page, agenda.txt from the CLI, through the store")
	if n := eval[float64](b, chatLine("bob", "[file] agenda.txt (204.8 KB)"), 5*time.Second); n != 1 {
		t.Errorf("the group's file shows %v times in the group's conversation, want once\npage says: %s", n, b.pageText())
	}
}

// noisePNG writes a w×h PNG of noise (it does not compress) named name in a
// new temporary directory and returns its path and contents.
func noisePNG(t testing.TB, name string, w, h int) (string, []byte) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(r.Uint32()), uint8(r.Uint32()), uint8(r.Uint32()), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes()
}

// TestBrowserFilePageToPage: a file from one page to another goes directly
// (both ends in WebRTC) and arrives whole, the signed hash checked.
func TestBrowserFilePageToPage(t *testing.T) {
	a, bb, _ := annAndBen(t, 81)
	a.askContact("ben")
	bb.click("Accept ann")
	bb.shows("ann is now a contact", 10*time.Second)
	a.waitFor("ben online in ann's contacts", badge("ben", "online"), 15*time.Second)
	a.click("Chat with ben")
	path, data := randomFile(t, "page-to-page.bin", 3<<20)
	sum := sha256.Sum256(data)
	t0 := time.Now()
	a.do("choose the file", 10*time.Second, chromedp.SetUploadFiles(`#file-input`, []string{path}))
	got := bb.pageReceived("page-to-page.bin", 30*time.Second)
	t.Logf("page → page: 3 MB in %v (noisy), route %s", time.Since(t0).Round(time.Millisecond), got.Route)
	if got.Hash != hex.EncodeToString(sum[:]) || got.Sum != got.Hash || got.Route != "direct" {
		t.Errorf("ben's file: %+v; want sha256 %x, directly", got, sum)
	}
	a.waitFor("ann's card to say delivered", `[...document.querySelectorAll(".file-card")].some((c) => `+
		`c.querySelector(".file-name").textContent === "page-to-page.bin" && c.dataset.status === "delivered")`, 20*time.Second)
}
