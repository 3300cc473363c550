package loginapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/parley/parley/internal/identity"
)

// TestPassRoundTrip: a new pass verifies and survives the header form and
// the JSON of a mailbox item unchanged.
func TestPassRoundTrip(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	p := NewPass("bob", "alice", priv)
	if err := p.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !p.Device.Equal(priv.Public()) {
		t.Errorf("Device: got %x, want the signing key", p.Device)
	}
	enc := p.Encode()
	if len(enc) > MaxPassBytes || strings.ContainsAny(enc, "+/=") {
		t.Errorf("Encode: %d bytes %q, want base64url without padding within %d", len(enc), enc, MaxPassBytes)
	}
	got, err := ParsePass(enc)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("ParsePass(Encode): got %+v %v, want %+v", got, err, p)
	}
	// The longest names still fit the cap.
	long := strings.Repeat("a", identity.MaxUserLen)
	if enc := NewPass(long, long, priv).Encode(); len(enc) > MaxPassBytes/2 {
		t.Errorf("pass with 32-character names: %d bytes", len(enc))
	}
	// In a mailbox item: an object with standard base64 device and sig.
	b, err := json.Marshal(MailboxItem{ToUser: "bob", ID: "m", Blob: json.RawMessage(`1`), Pass: &p})
	if err != nil {
		t.Fatal(err)
	}
	var wire MailboxItemWire
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if got, err := UnmarshalPass(wire.Pass); err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("UnmarshalPass(item's pass): got %+v %v, want %+v", got, err, p)
	}
	if !strings.Contains(string(wire.Pass), `"device":"`+base64.StdEncoding.EncodeToString(p.Device)+`"`) {
		t.Errorf("item's pass %s: device is not standard base64", wire.Pass)
	}
	// Without a pass the field is left out.
	if b, _ := json.Marshal(MailboxItem{ToUser: "bob"}); strings.Contains(string(b), "pass") {
		t.Errorf("item without a pass: %s", b)
	}
}

func TestPassVerify(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	good := NewPass("bob", "alice", priv)
	with := func(f func(p *Pass)) Pass {
		p := NewPass("bob", "alice", priv)
		f(&p)
		return p
	}
	tests := []struct {
		name string
		p    Pass
		want string // in the error; "" for success
	}{
		{"good", good, ""},
		{"user changed", with(func(p *Pass) { p.User = "carol" }), "signature does not verify"},
		{"by changed", with(func(p *Pass) { p.By = "carol" }), "signature does not verify"},
		{"user and by swapped", with(func(p *Pass) { p.User, p.By = p.By, p.User }), "signature does not verify"},
		{"another device", with(func(p *Pass) { p.Device = other.Public().(ed25519.PublicKey) }), "signature does not verify"},
		{"another context", with(func(p *Pass) { p.Sig = identity.SignContext(priv, DeviceContext, PassMessage("bob", "alice")) }), "signature does not verify"},
		{"short device", with(func(p *Pass) { p.Device = p.Device[:31] }), "device is 31 bytes"},
		{"no device", with(func(p *Pass) { p.Device = nil }), "device is 0 bytes"},
		{"short sig", with(func(p *Pass) { p.Sig = p.Sig[:63] }), "sig is 63 bytes"},
		{"empty user", NewPass("", "alice", priv), "user: invalid user name"},
		{"bad by", NewPass("bob", "Alice", priv), "by: invalid user name"},
		{"long user", NewPass(strings.Repeat("b", 33), "alice", priv), "user: invalid user name: must be 1 to 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Verify()
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrBadPass) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrBadPass with %q", err, tt.want)
			}
			// ParsePass of its header form refuses it the same way.
			if _, perr := ParsePass(tt.p.Encode()); perr == nil || perr.Error() != err.Error() {
				t.Errorf("ParsePass: got %v, want %v", perr, err)
			}
		})
	}
}

func TestParsePassMalformed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	p := NewPass("bob", "alice", priv)
	js, _ := json.Marshal(p)
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "not a JSON object"},
		{"padded", base64.URLEncoding.EncodeToString(js), "not base64url"},
		{"standard alphabet", "+" + enc(js)[1:], "not base64url"},
		{"too long", strings.Repeat("A", MaxPassBytes+1), "1025 bytes, at most 1024"},
		{"not JSON", enc([]byte("hello")), "not a JSON object"},
		{"array", enc([]byte(`[1,2]`)), "not a JSON object"},
		{"null", enc([]byte(`null`)), "user: invalid user name"},
		{"device not base64", enc([]byte(`{"user":"bob","by":"alice","device":"!!","sig":""}`)), "not a JSON object"},
		{"trailing data", enc(append(js, []byte(` {}`)...)), "not a JSON object"},
		{"missing sig", enc([]byte(`{"user":"bob","by":"alice","device":"` + base64.StdEncoding.EncodeToString(p.Device) + `"}`)), "sig is 0 bytes"},
	}
	if len(js)%3 == 0 {
		tests[1].in = base64.URLEncoding.EncodeToString(append(js, ' ')) // force padding
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePass(tt.in)
			if !errors.Is(err, ErrBadPass) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %+v %v, want ErrBadPass with %q", got, err, tt.want)
			}
			if err != nil && len(tt.in) > 8 && strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q quotes the input", err)
			}
		})
	}
}

// TestDevicesWithPass: the pass travels in the Parley-Pass header, only when
// given; a malformed one is refused before any request.
func TestDevicesWithPass(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	p := NewPass("bob", "alice", priv)
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get(PassHeader))
		json.NewEncoder(w).Encode(DevicesResponse{User: "bob", Devices: []Device{}})
	}))
	defer srv.Close()
	c := NewClient(srv.URL, nil)
	ctx := t.Context()
	if _, err := c.Devices(ctx, "cred", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DevicesWithPass(ctx, "cred", "bob", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DevicesWithPass(ctx, "cred", "bob", &p); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "", p.Encode()}; !reflect.DeepEqual(got, want) {
		t.Errorf("Parley-Pass headers: got %q, want %q", got, want)
	}
	bad := p
	bad.User = "carol"
	_, err := c.DevicesWithPass(ctx, "cred", "carol", &bad)
	if !errors.Is(err, ErrBadRequest) || !errors.Is(err, ErrBadPass) || !strings.HasPrefix(err.Error(), "login: ") || len(got) != 3 {
		t.Errorf("bad pass: got %v after %d requests, want ErrBadRequest and ErrBadPass before any", err, len(got))
	}
	_, err = c.PostMailbox(ctx, "cred", []MailboxItem{{ToUser: "carol", ID: "m", Blob: json.RawMessage(`1`), Pass: &bad}})
	if !errors.Is(err, ErrBadRequest) || !errors.Is(err, ErrBadPass) || !strings.Contains(err.Error(), "items[0].pass") || len(got) != 3 {
		t.Errorf("mailbox item with a bad pass: got %v after %d requests, want ErrBadRequest and ErrBadPass before any", err, len(got))
	}
}

// TestPassErrorAnswers: the server's answers about passes map to ErrBadPass
// (inside ErrBadRequest, with the item) and ErrNotContact.
func TestPassErrorAnswers(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   []error
		item   int
	}{
		{400, `{"error":"malformed pass: Parley-Pass header: not base64url without padding"}`, []error{ErrBadRequest, ErrBadPass}, -1},
		{400, `{"error":"malformed pass: items[2].pass: sig is 3 bytes, want 64","item":2}`, []error{ErrBadRequest, ErrBadPass}, 2},
		{403, `{"error":"not a contact: items[0].to_user bob is not your accepted contact and items[0].pass did not admit you","item":0}`, []error{ErrNotContact}, 0},
	} {
		c := NewClient("http://login.test", &http.Client{Transport: &answerTransport{status: tt.status, body: []byte(tt.body)}})
		_, err := c.PostMailbox(t.Context(), "cred", []MailboxItem{{ToUser: "bob", ID: "m", Blob: json.RawMessage(`1`)}})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Item != tt.item {
			t.Errorf("%s: got %v (%+v), want item %d", tt.body, err, ae, tt.item)
		}
		for _, w := range tt.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: got %v, want %v", tt.body, err, w)
			}
		}
		if errors.Is(err, ErrBadPass) != (tt.status == 400) {
			t.Errorf("%s: errors.Is(ErrBadPass) = %v", tt.body, errors.Is(err, ErrBadPass))
		}
	}
}
