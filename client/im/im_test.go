package im

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
)

// imTestNow is the clock of the IM tests.
var imTestNow = time.Unix(1_800_000_000, 0)

// testDevice is one device of a test user: its keys, record and credential.
type testDevice struct {
	user   string
	key    ed25519.PrivateKey
	x      *ecdh.PrivateKey
	rec    DeviceRecord
	cred   string
	sender Sender
}

func (d *testDevice) pub() ed25519.PublicKey { return d.key.Public().(ed25519.PublicKey) }

// open opens e on this device.
func (d *testDevice) open(e *Envelope, loginKey ed25519.PublicKey) (*Opened, error) {
	return Open(e, d.user, d.key, d.x, loginKey, imTestNow)
}

func newTestDevice(t testing.TB, loginPriv ed25519.PrivateKey, user string) *testDevice {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := identity.Issue(loginPriv, identity.Credential{User: user, PublicKey: pub,
		NotBefore: imTestNow.Add(-time.Minute).Unix(), Expires: imTestNow.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{user: user, key: key, x: x, rec: NewDeviceRecord(user, key, x), cred: cred,
		sender: Sender{User: user, Device: key, Credential: cred}}
}

// imWorld: alice with devices a1 and a2, bob with b1 and b2, carol with c1.
type imWorld struct {
	loginPub           ed25519.PublicKey
	loginPriv          ed25519.PrivateKey
	a1, a2, b1, b2, c1 *testDevice
}

func newIMWorld(t testing.TB) *imWorld {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	w := &imWorld{loginPub: pub, loginPriv: priv}
	w.a1, w.a2 = newTestDevice(t, priv, "alice"), newTestDevice(t, priv, "alice")
	w.b1, w.b2 = newTestDevice(t, priv, "bob"), newTestDevice(t, priv, "bob")
	w.c1 = newTestDevice(t, priv, "carol")
	return w
}

// toBob are the records a1 seals to for bob: bob's devices and alice's
// (a1's own is skipped).
func (w *imWorld) toBob() []DeviceRecord {
	return []DeviceRecord{w.b1.rec, w.b2.rec, w.a1.rec, w.a2.rec}
}

func mustSeal(t testing.TB, w *imWorld, text string) *Envelope {
	t.Helper()
	e, err := SealMessage(w.a1.sender, "bob", w.toBob(), Draft{Seq: 1, Time: imTestNow, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// wire sends e through JSON, as every transport does.
func wire(t testing.TB, e *Envelope) *Envelope {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestIMRoundTrip(t *testing.T) {
	w := newIMWorld(t)
	e := wire(t, mustSeal(t, w, "hello, bob ✓"))
	if got, want := len(e.Keys), 3; got != want {
		t.Fatalf("wrapped keys = %d, want %d (b1, b2, a2; not a1 itself)", got, want)
	}
	tests := []struct {
		name    string
		dev     *testDevice
		wantMsg Message
	}{
		{"recipient device 1", w.b1, Message{Peer: "alice", Dir: DirIn, State: StateReceived}},
		{"recipient device 2", w.b2, Message{Peer: "alice", Dir: DirIn, State: StateReceived}},
		{"sender's other device", w.a2, Message{Peer: "bob", Dir: DirOut, State: StateSent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.dev.open(e, w.loginPub)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if o.Kind != KindMessage || o.Text != "hello, bob ✓" || o.From != "alice" || o.To != "bob" ||
				o.Seq != 1 || o.TS != imTestNow.UnixMilli() || o.ID != e.ID || !o.FromDevice.Equal(w.a1.pub()) {
				t.Errorf("Opened = %+v", o)
			}
			m := o.Message(tt.dev.user)
			if m.Peer != tt.wantMsg.Peer || m.Dir != tt.wantMsg.Dir || m.State != tt.wantMsg.State || m.Text != o.Text {
				t.Errorf("Message = %+v, want peer %s dir %s state %s", m, tt.wantMsg.Peer, tt.wantMsg.Dir, tt.wantMsg.State)
			}
		})
	}
	if _, err := w.a1.open(e, w.loginPub); !errors.Is(err, ErrNoKeyForDevice) {
		t.Errorf("sender's own device: err = %v, want ErrNoKeyForDevice", err)
	}
	// The plaintext appears nowhere in the envelope.
	b, _ := e.Encode()
	if strings.Contains(string(b), "hello") {
		t.Error("plaintext in the envelope's JSON")
	}
}

func TestIMReceipt(t *testing.T) {
	w := newIMWorld(t)
	ids := []string{NewMessageID(), NewMessageID()}
	e, err := SealReceipt(w.b1.sender, "alice", []DeviceRecord{w.a1.rec, w.a2.rec, w.b2.rec}, ids, imTestNow)
	if err != nil {
		t.Fatal(err)
	}
	e = wire(t, e)
	for _, d := range []*testDevice{w.a1, w.a2, w.b2} {
		o, err := d.open(e, w.loginPub)
		if err != nil {
			t.Fatalf("%s: Open: %v", d.user, err)
		}
		if o.Kind != KindReceipt || o.State != ReceiptDelivered || strings.Join(o.Acked, ",") != strings.Join(ids, ",") {
			t.Errorf("%s: Opened = %+v", d.user, o)
		}
	}
	tests := []struct {
		name  string
		acked []string
	}{
		{"none", nil},
		{"bad id", []string{"xyz"}},
		{"too many", make([]string, MaxReceiptIDs+1)},
	}
	for _, tt := range tests {
		if e, err := SealReceipt(w.b1.sender, "alice", []DeviceRecord{w.a1.rec}, tt.acked, imTestNow); !errors.Is(err, ErrBadEnvelope) || e != nil {
			t.Errorf("%s: SealReceipt: envelope %v, err %v; want none, ErrBadEnvelope", tt.name, e != nil, err)
		}
	}
}

// TestIMReadReceiptAndTyping: a read receipt and a typing envelope open
// as such on every device they are sealed for; their bodies are checked.
func TestIMReadReceiptAndTyping(t *testing.T) {
	w := newIMWorld(t)
	ids := []string{NewMessageID()}
	r, err := SealReceiptState(w.b1.sender, "alice", []DeviceRecord{w.a1.rec, w.a2.rec}, ReceiptRead, ids, imTestNow)
	if err != nil {
		t.Fatal(err)
	}
	o, err := w.a1.open(wire(t, r), w.loginPub)
	if err != nil || o.Kind != KindReceipt || o.State != ReceiptRead || o.Acked[0] != ids[0] || o.Seq != 0 {
		t.Fatalf("read receipt: %+v, %v", o, err)
	}
	if _, err := SealReceiptState(w.b1.sender, "alice", []DeviceRecord{w.a1.rec}, "seen", ids, imTestNow); !errors.Is(err, ErrBadEnvelope) {
		t.Errorf("a receipt state of its own: err = %v, want ErrBadEnvelope", err)
	}
	for _, active := range []bool{true, false} {
		e, err := SealTyping(w.b1.sender, "alice", []DeviceRecord{w.a1.rec}, active, imTestNow)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: TypingActive, false: TypingStopped}[active]
		o, err := w.a1.open(wire(t, e), w.loginPub)
		if err != nil || o.Kind != KindTyping || o.State != want || o.Text != "" || o.Acked != nil {
			t.Fatalf("typing %v: %+v, %v", active, o, err)
		}
		// Only the devices it is sealed for: alice's other device has no key.
		if _, err := w.a2.open(wire(t, e), w.loginPub); !errors.Is(err, ErrNoKeyForDevice) {
			t.Errorf("typing opened on a device it was not sealed for: %v", err)
		}
	}
	// Bodies that are not what their kind says are refused, signed or not.
	for _, tt := range []struct {
		name, kind string
		body       string
	}{
		{"typing with a text", KindTyping, "hello"},
		{"typing with another state", KindTyping, `{"state":"thinking"}`},
		{"receipt with another state", KindReceipt, `{"state":"seen","acked":["` + ids[0] + `"]}`},
	} {
		e, err := seal(w.b1.sender, tt.kind, NewMessageID(), "alice", 0, imTestNow, []byte(tt.body), []DeviceRecord{w.a1.rec})
		if err != nil {
			t.Fatal(err)
		}
		if o, err := w.a1.open(wire(t, e), w.loginPub); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("%s: Open = %+v, %v; want ErrBadEnvelope", tt.name, o, err)
		}
	}
}

// TestIMEnvelopeTamper: a supernode (or the login server, or a relay) that
// alters any part of an envelope gets it refused.
func TestIMEnvelopeTamper(t *testing.T) {
	w := newIMWorld(t)
	orig := mustSeal(t, w, "transfer 10 euros")
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i%len(c)] ^= 1
		return c
	}
	tests := []struct {
		name   string
		tamper func(e *Envelope)
		want   error
	}{
		{"ciphertext", func(e *Envelope) { e.Ciphertext = flip(e.Ciphertext, 10) }, ErrEnvelopeSignature},
		{"ciphertext tag", func(e *Envelope) { e.Ciphertext = flip(e.Ciphertext, len(e.Ciphertext)-1) }, ErrEnvelopeSignature},
		{"wrapped key", func(e *Envelope) { e.Keys[0].Key = flip(e.Keys[0].Key, 3) }, ErrEnvelopeSignature},
		{"wrapped key device", func(e *Envelope) { e.Keys[1].Device = w.c1.pub() }, ErrEnvelopeSignature},
		{"keys reordered", func(e *Envelope) { e.Keys[0], e.Keys[1] = e.Keys[1], e.Keys[0] }, ErrEnvelopeSignature},
		{"wrapped key dropped", func(e *Envelope) { e.Keys = e.Keys[1:] }, ErrEnvelopeSignature},
		{"ephemeral key", func(e *Envelope) { e.Ephemeral = flip(e.Ephemeral, 0) }, ErrEnvelopeSignature},
		{"id", func(e *Envelope) { e.ID = NewMessageID() }, ErrEnvelopeSignature},
		{"seq", func(e *Envelope) { e.Seq++ }, ErrEnvelopeSignature},
		{"ts", func(e *Envelope) { e.TS-- }, ErrEnvelopeSignature},
		{"to another user", func(e *Envelope) { e.To = "carol" }, ErrEnvelopeSignature},
		{"kind", func(e *Envelope) { e.Kind = KindReceipt }, ErrEnvelopeSignature},
		{"signature", func(e *Envelope) { e.Sig = flip(e.Sig, 5) }, ErrEnvelopeSignature},
		{"from another user", func(e *Envelope) { e.From = "carol" }, ErrEnvelopeSender},
		{"credential swapped", func(e *Envelope) { e.Credential = w.a2.cred }, ErrEnvelopeSender},
		{"credential bit", func(e *Envelope) { e.Credential = string(flip([]byte(e.Credential), 7)) }, ErrEnvelopeSender},
		{"from device", func(e *Envelope) { e.FromDevice = w.a2.pub() }, ErrEnvelopeSender},
		{"version", func(e *Envelope) { e.V = 2 }, ErrBadEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wire(t, orig)
			tt.tamper(e)
			o, err := w.b1.open(e, w.loginPub)
			if !errors.Is(err, tt.want) || o != nil {
				t.Fatalf("Open = %+v, %v; want nil, %v", o, err, tt.want)
			}
		})
	}
	// The untouched envelope still opens (the tampering worked on copies).
	if _, err := w.b1.open(wire(t, orig), w.loginPub); err != nil {
		t.Fatalf("untouched: %v", err)
	}
}

// TestIMForgery: envelopes made by someone who is not the claimed sender.
func TestIMForgery(t *testing.T) {
	w := newIMWorld(t)
	_, otherLogin, _ := ed25519.GenerateKey(rand.Reader)
	rogue := newTestDevice(t, otherLogin, "alice") // "alice" by another login server
	tests := []struct {
		name string
		seal func() (*Envelope, error)
		dev  *testDevice
		want error
	}{
		{
			// Carol runs a supernode, takes alice's credential off an
			// envelope and signs with her own key.
			name: "signed by a key that is not the credential's",
			seal: func() (*Envelope, error) {
				e, err := SealMessage(w.c1.sender, "bob", []DeviceRecord{w.b1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "from alice, honest"})
				if err != nil {
					return nil, err
				}
				e.From, e.FromDevice, e.Credential = "alice", w.a1.pub(), w.a1.cred
				e.Sig = identity.SignContext(w.c1.key, EnvelopeContext, e.signedMessage())
				return e, nil
			},
			dev: w.b1, want: ErrEnvelopeSignature,
		},
		{
			name: "credential of another device, signed by mine",
			seal: func() (*Envelope, error) {
				e, err := SealMessage(w.c1.sender, "bob", []DeviceRecord{w.b1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "hi"})
				if err != nil {
					return nil, err
				}
				e.Credential = w.a1.cred
				e.Sig = identity.SignContext(w.c1.key, EnvelopeContext, e.signedMessage())
				return e, nil
			},
			dev: w.b1, want: ErrEnvelopeSender,
		},
		{
			name: "credential from another login key",
			seal: func() (*Envelope, error) {
				return SealMessage(rogue.sender, "bob", []DeviceRecord{w.b1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "hi"})
			},
			dev: w.b1, want: identity.ErrBadSignature,
		},
		{
			name: "expired when it was dated",
			seal: func() (*Envelope, error) {
				return SealMessage(w.a1.sender, "bob", []DeviceRecord{w.b1.rec}, Draft{Seq: 1, Time: imTestNow.Add(3 * time.Hour), Text: "hi"})
			},
			dev: w.b1, want: ErrEnvelopeSender,
		},
		{
			name: "addressed to another user",
			seal: func() (*Envelope, error) {
				// Carol gets an envelope to bob with a key for carol.
				return SealMessage(w.a1.sender, "bob", []DeviceRecord{w.b1.rec, w.c1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "hi"})
			},
			dev: w.c1, want: ErrBadDevice, // refused at sealing already
		},
		{
			name: "not addressed to me",
			seal: func() (*Envelope, error) {
				return SealMessage(w.a1.sender, "carol", []DeviceRecord{w.c1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "hi"})
			},
			dev: w.b1, want: ErrNotForMe,
		},
		{
			name: "not encrypted to my device",
			seal: func() (*Envelope, error) {
				return SealMessage(w.a1.sender, "bob", []DeviceRecord{w.b1.rec}, Draft{Seq: 1, Time: imTestNow, Text: "hi"})
			},
			dev: w.b2, want: ErrNoKeyForDevice,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := tt.seal()
			if err != nil {
				if errors.Is(err, tt.want) {
					return
				}
				t.Fatalf("seal: %v", err)
			}
			o, err := tt.dev.open(wire(t, e), w.loginPub)
			if !errors.Is(err, tt.want) || o != nil {
				t.Fatalf("Open = %+v, %v; want nil, %v", o, err, tt.want)
			}
		})
	}
}

// TestIMWrappedKeyForAnotherDevice: a wrapped key moved to my device's entry
// (re-signed by a sender who is honest about it) does not decrypt.
func TestIMWrappedKeyForAnotherDevice(t *testing.T) {
	w := newIMWorld(t)
	e := mustSeal(t, w, "hi")
	e.Keys[0].Key, e.Keys[1].Key = e.Keys[1].Key, e.Keys[0].Key
	e.Sig = identity.SignContext(w.a1.key, EnvelopeContext, e.signedMessage())
	if _, err := w.b1.open(wire(t, e), w.loginPub); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open err = %v, want ErrDecrypt", err)
	}
}

func TestIMDeviceRecords(t *testing.T) {
	w := newIMWorld(t)
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	swapped := w.b1.rec
	swapped.X25519 = other.PublicKey().Bytes() // the login server's key instead of the device's
	renamed := w.b1.rec
	renamed.User = "carol"
	short := w.b1.rec
	short.X25519 = short.X25519[:31]
	tests := []struct {
		name string
		rec  DeviceRecord
		want error
	}{
		{"good", w.b1.rec, nil},
		{"x25519 key substituted", swapped, ErrBadDevice},
		{"user renamed", renamed, ErrBadDevice},
		{"short key", short, ErrBadDevice},
		{"bad user", DeviceRecord{User: "Bob"}, ErrBadDevice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rec.Verify(); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				return
			}
			e, err := SealMessage(w.a1.sender, "bob", []DeviceRecord{w.b2.rec, tt.rec}, Draft{Seq: 1, Text: "hi"})
			if !errors.Is(err, tt.want) || e != nil {
				t.Fatalf("SealMessage with it: envelope %v, err %v; want none, %v", e != nil, err, tt.want)
			}
		})
	}
	// The record survives JSON (the login server's device list).
	b, _ := json.Marshal(w.b1.rec)
	var back DeviceRecord
	if err := json.Unmarshal(b, &back); err != nil || back.Verify() != nil {
		t.Fatalf("record through JSON: %v, %v", err, back.Verify())
	}
}

func TestIMSealInput(t *testing.T) {
	w := newIMWorld(t)
	tests := []struct {
		name    string
		to      string
		devices []DeviceRecord
		text    string
		seq     int64
		want    error
	}{
		{"empty", "bob", w.toBob(), "", 1, ErrEmptyMessage},
		{"white space only", "bob", w.toBob(), " \n\t ", 1, ErrEmptyMessage},
		{"64 KiB + 1", "bob", w.toBob(), strings.Repeat("a", MaxMessageBytes+1), 1, ErrMessageTooLong},
		{"not UTF-8", "bob", w.toBob(), "caf\xe9", 1, ErrMessageNotText},
		{"no device of the recipient", "bob", []DeviceRecord{w.a2.rec}, "hi", 1, ErrNoDevices},
		{"no devices at all", "bob", nil, "hi", 1, ErrNoDevices},
		{"note to self with no other device", "alice", []DeviceRecord{w.a1.rec}, "hi", 1, ErrNoDevices},
		{"seq 0", "bob", w.toBob(), "hi", 0, ErrBadEnvelope},
		{"bad recipient name", "Bob", w.toBob(), "hi", 1, identity.ErrBadUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := SealMessage(w.a1.sender, tt.to, tt.devices, Draft{Seq: tt.seq, Text: tt.text})
			if !errors.Is(err, tt.want) || e != nil {
				t.Fatalf("SealMessage: envelope %v, err %v; want none, %v", e != nil, err, tt.want)
			}
		})
	}
	// Too many devices.
	var many []DeviceRecord
	for range MaxEnvelopeDevices + 1 {
		many = append(many, newTestDevice(t, w.loginPriv, "bob").rec)
	}
	if e, err := SealMessage(w.a1.sender, "bob", many, Draft{Seq: 1, Text: "hi"}); !errors.Is(err, ErrTooManyDevices) || e != nil {
		t.Fatalf("%d devices: envelope %v, err %v; want none, ErrTooManyDevices", len(many), e != nil, err)
	}
	// A sender whose credential is not its own device's.
	s := w.a1.sender
	s.Credential = w.a2.cred
	if e, err := SealMessage(s, "bob", w.toBob(), Draft{Seq: 1, Text: "hi"}); !errors.Is(err, ErrEnvelopeSender) || e != nil {
		t.Fatalf("foreign credential: envelope %v, err %v; want none, ErrEnvelopeSender", e != nil, err)
	}
	// A note to self reaches the other device.
	e, err := SealMessage(w.a1.sender, "alice", []DeviceRecord{w.a1.rec, w.a2.rec}, Draft{Seq: 1, Time: imTestNow, Text: "buy milk"})
	if err != nil {
		t.Fatal(err)
	}
	if o, err := w.a2.open(wire(t, e), w.loginPub); err != nil || o.Text != "buy milk" {
		t.Fatalf("note to self: %+v, %v", o, err)
	}
}

// randomText returns n bytes of text drawn from alphabet (ASCII).
func randomText(t testing.TB, n int, alphabet string) string {
	t.Helper()
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			t.Fatal(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

// randomRunes returns up to n bytes of random code points: ASCII with
// probability pa, 2-byte with p2, 3-byte with p3, else 4-byte ones.
func randomRunes(n int, pa, p2, p3 float64) string {
	r := mrand.New(mrand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < n-4 {
		switch p := r.Float64(); {
		case p < pa:
			b.WriteRune(rune(r.IntN(0x80)))
		case p < pa+p2:
			b.WriteRune(rune(0x80 + r.IntN(0x800-0x80)))
		case p < pa+p2+p3:
			c := rune(0x800 + r.IntN(0x10000-0x800))
			if c >= 0xd800 && c < 0xe000 {
				c -= 0x800
			}
			b.WriteRune(c)
		default:
			b.WriteRune(rune(0x10000 + r.IntN(0x100000)))
		}
	}
	return b.String()
}

// TestIMEnvelopeSize: a 64 KiB message to a recipient with a few devices fits
// a supernode payload (and so a mailbox blob).
func TestIMEnvelopeSize(t *testing.T) {
	w := newIMWorld(t)
	printable := make([]byte, 0, 95)
	for c := byte(' '); c <= '~'; c++ {
		printable = append(printable, c)
	}
	prose := strings.Repeat("The quick brown fox jumps over the lazy dog; ", MaxMessageBytes/45+1)[:MaxMessageBytes]
	cjk := strings.Repeat("日本語のテキスト、", MaxMessageBytes/27+1)
	cjk = cjk[:MaxMessageBytes-MaxMessageBytes%3]
	tests := []struct {
		name string
		text string
	}{
		{"prose", prose},
		{"<>& (escaped by JSON)", strings.Repeat("<&>", MaxMessageBytes/3)},
		{"CJK", cjk},
		{"random printable ASCII", randomText(t, MaxMessageBytes, string(printable))},
		{"random base64 text", randomText(t, MaxMessageBytes, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")},
		{"16 KiB, not compressed", randomText(t, CompressOver, string(printable))},
		{"random ASCII with control characters", randomRunes(MaxMessageBytes, 1, 0, 0)},
		{"random 2-byte characters", randomRunes(MaxMessageBytes, 0, 1, 0)},
		{"random 3-byte characters", randomRunes(MaxMessageBytes, 0, 0, 1)},
		{"random 4-byte characters", randomRunes(MaxMessageBytes, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.text) > MaxMessageBytes {
				t.Fatalf("test text of %d bytes", len(tt.text))
			}
			e, err := SealMessage(w.a1.sender, "bob", w.toBob(), Draft{Seq: 1, Time: imTestNow, Text: tt.text})
			if err != nil {
				t.Fatalf("SealMessage: %v", err)
			}
			b, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes of text → %d bytes of envelope", len(tt.text), len(b))
			if len(b) > MaxEnvelopeBytes {
				t.Fatalf("envelope %d bytes, over %d", len(b), MaxEnvelopeBytes)
			}
			o, err := w.b2.open(wire(t, e), w.loginPub)
			if err != nil || o.Text != tt.text {
				t.Fatalf("Open: %v (text equal: %v)", err, o != nil && o.Text == tt.text)
			}
		})
	}
	// Text at the limit that does not compress (code points drawn at random
	// from several scripts) does not fit: a clear error, no envelope.
	incompressible := randomRunes(MaxMessageBytes, 0.5, 0.5, 0)
	e, err := SealMessage(w.a1.sender, "bob", w.toBob(), Draft{Seq: 1, Text: incompressible})
	if !errors.Is(err, ErrMessageTooLong) || e != nil {
		t.Fatalf("incompressible: envelope %v, %v; want none, ErrMessageTooLong", e != nil, err)
	}
}

func TestIMClock(t *testing.T) {
	w := newIMWorld(t)
	e, err := SealMessage(w.a1.sender, "bob", w.toBob(), Draft{Seq: 1, Time: imTestNow.Add(time.Minute), Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	e = wire(t, e)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"now", imTestNow.Add(time.Minute), nil},
		{"a month later (mailbox), credential long expired", imTestNow.Add(30 * 24 * time.Hour), nil},
		{"receiver's clock behind within skew", imTestNow, nil},
		{"dated far ahead of the receiver", imTestNow.Add(-10 * time.Minute), ErrBadEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(e, "bob", w.b1.key, w.b1.x, w.loginPub, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIMDecodeEnvelope(t *testing.T) {
	w := newIMWorld(t)
	good, _ := mustSeal(t, w, "hi").Encode()
	mod := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"good", good, true},
		{"not JSON", []byte("hello"), false},
		{"null", []byte("null"), false},
		{"empty object", []byte("{}"), false},
		{"too big", append(good, make([]byte, MaxEnvelopeBytes)...), false},
		{"version 2", mod(func(m map[string]any) { m["v"] = 2 }), false},
		{"unknown kind", mod(func(m map[string]any) { m["kind"] = "call" }), false},
		{"short id", mod(func(m map[string]any) { m["id"] = "abc" }), false},
		{"upper-case id", mod(func(m map[string]any) { m["id"] = strings.ToUpper(m["id"].(string)) }), false},
		{"bad from", mod(func(m map[string]any) { m["from"] = "Alice" }), false},
		{"no keys", mod(func(m map[string]any) { m["keys"] = []any{} }), false},
		{"duplicate device", mod(func(m map[string]any) { k := m["keys"].([]any); m["keys"] = append(k, k[0]) }), false},
		{"negative seq", mod(func(m map[string]any) { m["seq"] = -1 }), false},
		{"short signature", mod(func(m map[string]any) { m["sig"] = "AAAA" }), false},
		{"no ciphertext", mod(func(m map[string]any) { delete(m, "ct") }), false},
		{"unknown field ignored", mod(func(m map[string]any) { m["x"] = 1 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEnvelope(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("DecodeEnvelope err = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("err = %v, want ErrBadEnvelope", err)
			}
			if err == nil {
				if _, err := w.b1.open(e, w.loginPub); err != nil {
					t.Fatalf("Open: %v", err)
				}
			}
		})
	}
}

func TestIMContentFraming(t *testing.T) {
	// A deflate bomb stops at the limit.
	bomb, err := frameContent([]byte(strings.Repeat("a", 4*MaxMessageBytes)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unframeContent(bomb, MaxMessageBytes); !errors.Is(err, ErrBadEnvelope) {
		t.Fatalf("bomb: err = %v, want ErrBadEnvelope", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"short", []byte{0, 0}},
		{"unpadded", make([]byte, 65)},
		{"length past the end", append([]byte{0, 0, 0, 1, 0}, make([]byte, 59)...)},
		{"non-zero padding", append([]byte{0, 0, 0, 0, 1, 'a', 1}, make([]byte, 57)...)},
		{"too much padding", append([]byte{0, 0, 0, 0, 0}, make([]byte, 123)...)},
		{"unknown encoding", append([]byte{7, 0, 0, 0, 0}, make([]byte, 59)...)},
		{"bad deflate", append([]byte{1, 0, 0, 0, 3, 0xff, 0xff, 0xff}, make([]byte, 56)...)},
	}
	for _, tt := range tests {
		if _, err := unframeContent(tt.in, MaxMessageBytes); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("%s: err = %v, want ErrBadEnvelope", tt.name, err)
		}
	}
	for _, n := range []int{1, 58, 59, 60, CompressOver, CompressOver + 1} {
		body := []byte(strings.Repeat("x", n))
		c, err := frameContent(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(c)%PadTo != 0 {
			t.Errorf("%d: framed length %d", n, len(c))
		}
		got, err := unframeContent(c, MaxMessageBytes)
		if err != nil || string(got) != string(body) {
			t.Errorf("%d: round trip: %v", n, err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	w := newIMWorld(f)
	good, _ := mustSeal(f, w, "hi").Encode()
	f.Add(good)
	ty, _ := SealTyping(w.a1.sender, "bob", w.toBob(), true, imTestNow)
	tb, _ := ty.Encode()
	f.Add(tb)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes the same.
		out, err := e.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded envelope: %v", err)
		}
		if _, err := DecodeEnvelope(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	w := newIMWorld(f)
	const text = "the one true message"
	e := mustSeal(f, w, text)
	good, _ := e.Encode()
	f.Add(good)
	r, _ := SealReceipt(w.a1.sender, "bob", w.toBob(), []string{e.ID}, imTestNow)
	rb, _ := r.Encode()
	f.Add(rb)
	rr, _ := SealReceiptState(w.a1.sender, "bob", w.toBob(), ReceiptRead, []string{e.ID}, imTestNow)
	rrb, _ := rr.Encode()
	f.Add(rrb)
	for _, active := range []bool{true, false} {
		ty, _ := SealTyping(w.a1.sender, "bob", w.toBob(), active, imTestNow)
		tb, _ := ty.Encode()
		f.Add(tb)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		o, err := w.b1.open(e, w.loginPub)
		if err != nil {
			return
		}
		// Only what alice sealed opens: nobody can make up another.
		if o.From != "alice" || (o.Kind == KindMessage && o.Text != text) ||
			(o.Kind == KindTyping && o.State != TypingActive && o.State != TypingStopped) {
			t.Fatalf("opened a message alice did not send: %+v", o)
		}
	})
}
