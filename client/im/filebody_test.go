package im

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func testOffer(t testing.TB, name string) *FileOffer {
	t.Helper()
	sum := sha256.Sum256([]byte("x"))
	f, err := NewFileOffer("a.txt", 1, "text/plain", sum[:])
	if err != nil {
		t.Fatal(err)
	}
	f.Name = name
	return f
}

// TestFileOfferRoundTrip: an offer sealed to bob opens on his devices with
// everything it said; a group offer keeps its group, MID and seq; done and
// signal bodies open too.
func TestFileOfferRoundTrip(t *testing.T) {
	w := newIMWorld(t)
	offer := testOffer(t, "photo of us.jpg")
	for _, body := range []*FileBody{
		{T: FileBodyOffer, Offer: offer},
		{T: FileBodyOffer, Offer: offer, Group: NewMessageID(), MID: NewMessageID(), Seq: 3},
		{T: FileBodyDone, File: offer.ID},
		{T: FileBodySignal, File: offer.ID, SDPType: "offer", SDP: "v=0\r\n"},
	} {
		e, err := SealFile(w.a1.sender, "bob", w.toBob(), body, 7, imTestNow)
		if err != nil {
			t.Fatal(err)
		}
		o, err := w.b2.open(wire(t, e), w.loginPub)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(o.File)
		want, _ := json.Marshal(body)
		if o.Kind != KindFile || string(got) != string(want) {
			t.Errorf("opened %s, want %s", got, want)
		}
		switch {
		case body.T == FileBodyOffer && body.Group == "" && (e.ID != offer.ID || e.Seq != 7):
			t.Errorf("1:1 offer: envelope %s seq %d, want the file's id and seq 7", e.ID, e.Seq)
		case body.Group != "" && (e.ID != FileEnvelopeID(body.MID, "bob") || e.Seq != 0):
			t.Errorf("group offer: envelope %s seq %d", e.ID, e.Seq)
		}
	}
}

// TestFileOfferBadNames: an offer whose name could name more than a file
// — a path up, an absolute path, a NUL, a control character, a name over
// MaxFileName — is refused by the receiver (Open) as by the sender
// (SealFile), whatever a sender's client was made to put in it.
func TestFileOfferBadNames(t *testing.T) {
	w := newIMWorld(t)
	for _, name := range []string{"../../.bashrc", "/etc/passwd", `..\..\boot.ini`, "a\x00b", "a\nb", "..", ".", "", strings.Repeat("x", MaxFileName+1), "\xff\xfe"} {
		body := &FileBody{T: FileBodyOffer, Offer: testOffer(t, name)}
		if _, err := SealFile(w.a1.sender, "bob", w.toBob(), body, 1, imTestNow); !errors.Is(err, ErrBadFileName) {
			t.Errorf("seal %q: %v, want ErrBadFileName", name, err)
		}
		if name == "\xff\xfe" {
			continue // JSON cannot carry it: it arrives as U+FFFD, a name
		}
		// A hostile client seals it anyway.
		b, _ := json.Marshal(body)
		e, err := seal(w.a1.sender, KindFile, body.Offer.ID, "bob", 1, imTestNow, b, w.toBob())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.b1.open(wire(t, e), w.loginPub); !errors.Is(err, ErrBadFileName) {
			t.Errorf("open %q: %v, want ErrBadFileName", name, err)
		}
	}
}

// FuzzFileBody: openFile takes any bytes a sender sealed without
// panicking, and what it takes checks.
func FuzzFileBody(f *testing.F) {
	offer := testOffer(f, "a.txt")
	for _, b := range []*FileBody{
		{T: FileBodyOffer, Offer: offer},
		{T: FileBodyDone, File: offer.ID},
		{T: FileBodySignal, File: offer.ID, SDPType: "answer", SDP: "v=0"},
	} {
		j, _ := json.Marshal(b)
		f.Add(j)
	}
	f.Add([]byte(`{"t":"offer","offer":{"name":"../x"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := frameContent(body)
		if err != nil {
			return
		}
		b, err := openFile(c)
		if err != nil {
			return
		}
		if err := b.check(); err != nil {
			t.Fatalf("opened a body that does not check: %v", err)
		}
		if b.Offer != nil && (CheckFileName(b.Offer.Name) != nil || strings.ContainsAny(SafeFileName(b.Offer.Name), `/\`)) {
			t.Fatalf("opened a bad name %q", b.Offer.Name)
		}
	})
}
