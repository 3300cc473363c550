package loginapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// answerTransport answers every request with a fixed status, Retry-After
// header and body, without a network.
type answerTransport struct {
	status     int
	retryAfter string
	body       []byte
}

func (a *answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(bytes.NewReader(a.body)), Request: r}, nil
}

// FuzzClientResponse feeds arbitrary answers (status, Retry-After, body) to
// every kind of client call: the client must return a value or an error,
// never panic, and its errors must be one printable line with a sentinel.
func FuzzClientResponse(f *testing.F) {
	for _, s := range []struct {
		status     uint16
		retryAfter string
		body       string
	}{
		{200, "", `{"user":"alice"}`},
		{201, "", `{"user":"alice"}`},
		{200, "", `null`},
		{200, "", ``},
		{200, "", `{"supernodes":[{"addr":"ws://x:1/","last_seen":1,"key":"AAAA"}]}`},
		{200, "", `{"alg":"Ed25519","public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}`},
		{200, "", `{"user":"alice","devices":[{"key":"AAAA","x25519":"AAAA","sig":"AAAA"}]}`},
		{200, "", `{"items":[{"seq":1,"from_user":"bob","blob":{"x":1}}],"more":true}`},
		{200, "", `{"users":["alice",null,1]}`},
		{200, "", `{"credential":"x.y.z","login_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}`},
		{200, "", `{"ttl":-1}`},
		{400, "", `{"error":"invalid user name: \"X\""}`},
		{400, "", `{"error":"signature does not verify"}`},
		{401, "", `{"error":"wrong user name or password"}`},
		{404, "", `{"error":"unknown user"}`},
		{404, "", `404 page not found`},
		{409, "", `{"error":"user already exists"}`},
		{413, "", `{"error":"request body larger than 65536 bytes"}`},
		{429, "30", `{"error":"too many failed logins, try again in 30 s","retry_after":30}`},
		{429, "", `{"error":"slow down","retry_after":9223372036854775807}`},
		{429, "99999999999999999999", `{"error":"slow down"}`},
		{429, "9223372036", `{"error":"slow down"}`},
		{429, "-5", `{"error":"slow down","retry_after":-3}`},
		{500, "", `{"error":"internal error"}`},
		{502, "", "<html>bad gateway</html>"},
		{507, "", `{"error":"quota exceeded","item":3}`},
		{507, "", `{"error":"quota exceeded","item":-9223372036854775808}`},
		{400, "", "{\"error\":\"a\\nb\\r\\u0000c\\u2028\"}"},
		{302, "", ``},
		{0, "", ``},
		{999, "", `{"error":1}`},
		{200, "", `{"id":"00112233445566778899aabbccddeeff","owner":"alice","size":1,"chunks":1,"have":1,"complete":true}`},
		{200, "", `{"id":"00112233445566778899aabbccddeeff","owner":"alice","size":9223372036854775807,"chunks":140737488355328,"have":-1}`},
		{200, "", "\x00\x01sealed chunk bytes, not JSON"},
		{204, "", ``},
		{404, "", `{"error":"chunk not stored: chunk 0 of file 00112233445566778899aabbccddeeff has not been uploaded"}`},
		{404, "", `{"error":"no such stored file: no stored file for you has id 00112233445566778899aabbccddeeff"}`},
		{409, "", `{"error":"file id already in use: another user's stored file has id 00112233445566778899aabbccddeeff"}`},
		{413, "", `{"error":"too large: a stored file is at most 104857600 bytes, not 104857601"}`},
	} {
		for op := range uint8(clientOps) {
			f.Add(s.status, s.retryAfter, []byte(s.body), op)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	x := make([]byte, X25519KeySize)
	sig := make([]byte, ed25519.SignatureSize)
	const fileID = "00112233445566778899aabbccddeeff"
	sealed := make([]byte, 1+StoreChunkOverhead)
	f.Fuzz(func(t *testing.T, status uint16, retryAfter string, body []byte, op uint8) {
		tr := &answerTransport{status: int(status) % 1000, retryAfter: retryAfter, body: body}
		c := NewClient("http://login.test", &http.Client{Transport: tr, Timeout: 5 * time.Second})
		ctx := context.Background()
		var err error
		switch op % clientOps {
		case 0:
			err = c.Register(ctx, "alice", "password1")
		case 1:
			var r *LoginResponse
			if r, err = c.Login(ctx, "alice", "password1", pub); err == nil && (r == nil || r.Supernodes == nil) {
				t.Fatalf("Login: nil answer without an error")
			}
		case 2:
			_, err = c.Refresh(ctx, "alice", "token", pub)
		case 3:
			err = c.ChangePassword(ctx, "alice", "password1", "password2")
		case 4:
			var k ed25519.PublicKey
			if k, err = c.Key(ctx); err == nil && len(k) != ed25519.PublicKeySize {
				t.Fatalf("Key: %d bytes", len(k))
			}
		case 5:
			_, err = c.UserExists(ctx, "alice")
		case 6:
			var ttl time.Duration
			if ttl, err = c.Heartbeat(ctx, "ws://203.0.113.1:7000/", priv); err == nil && ttl <= 0 {
				t.Fatalf("Heartbeat: ttl %v", ttl)
			}
		case 7:
			var l []SupernodeInfo
			if l, err = c.Supernodes(ctx); err == nil && l == nil {
				t.Fatalf("Supernodes: nil list")
			}
		case 8:
			var d []Device
			if d, err = c.Devices(ctx, "cred", "bob"); err == nil {
				for _, dv := range d {
					if !dv.Verify("bob") {
						t.Fatalf("Devices: an entry that does not verify")
					}
				}
			}
		case 9:
			_, err = c.PostMailbox(ctx, "cred", []MailboxItem{{ToUser: "bob", ToDevice: pub, ID: "m1", Blob: []byte(`{}`)}})
		case 10:
			_, _, err = c.Mailbox(ctx, "cred", 5)
		case 11:
			_, err = c.Search(ctx, "cred", "al", 5)
		case 12:
			_, err = c.PutDevice(ctx, "cred", x, sig)
		case 13:
			_, err = c.RequestContact(ctx, "cred", "bob")
		case 14:
			pass := NewPass("bob", "alice", priv)
			var d []Device
			if d, err = c.DevicesWithPass(ctx, "cred", "bob", &pass); err == nil {
				for _, dv := range d {
					if !dv.Verify("bob") {
						t.Fatalf("DevicesWithPass: an entry that does not verify")
					}
				}
			}
		case 15:
			err = c.CreateStoredFile(ctx, "cred", fileID, 1, []string{"bob"})
		case 16:
			err = c.PutChunk(ctx, "cred", fileID, 0, sealed)
		case 17:
			var fi StoredFileInfo
			if fi, err = c.StoredFile(ctx, "cred", fileID); err == nil &&
				(fi.ID != fileID || fi.Chunks != StoreChunks(fi.Size) || fi.Have < 0 || fi.Have > fi.Chunks) {
				t.Fatalf("StoredFile: inconsistent answer %+v", fi)
			}
		case 18:
			var b []byte
			if b, err = c.GetChunk(ctx, "cred", fileID, 0); err == nil && (len(b) <= StoreChunkOverhead || len(b) > MaxStoredChunk) {
				t.Fatalf("GetChunk: %d bytes", len(b))
			}
		case 19:
			err = c.DeleteStoredFile(ctx, "cred", fileID)
		}
		if err == nil {
			return
		}
		line := err.Error()
		if strings.ContainsAny(line, "\r\n\x00") || !strings.HasPrefix(line, "login: ") {
			t.Fatalf("error %q is not one line starting with login:", line)
		}
		var ae *APIError
		if errors.As(err, &ae) {
			if ae.Kind == nil || !errors.Is(err, ae.Kind) {
				t.Fatalf("APIError without a sentinel: %#v", ae)
			}
			if ae.RetryAfter < 0 || ae.RetryAfter > MaxRetryAfter {
				t.Fatalf("RetryAfter %v out of range", ae.RetryAfter)
			}
			if ae.Item < -1 || ae.Item >= MaxMailboxItems {
				t.Fatalf("Item %d out of range", ae.Item)
			}
		}
	})
}

// clientOps is the number of client calls FuzzClientResponse exercises.
const clientOps = 20

// FuzzParsePass feeds arbitrary header values to ParsePass: it must never
// panic; its errors must wrap ErrBadPass on one line without quoting the
// input; and a pass it accepts must verify, fit MaxPassBytes encoded, and
// read back unchanged from its own encoding and its JSON.
func FuzzParsePass(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	good := NewPass("bob", "alice", priv)
	goodJSON, _ := json.Marshal(good)
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		good.Encode(),
		NewPass(strings.Repeat("u", 32), strings.Repeat("b", 32), priv).Encode(),
		enc(goodJSON[:len(goodJSON)-1]),
		enc(append(goodJSON, ' ')),
		enc([]byte(`{"user":"bob","by":"alice","device":"AAAA","sig":"AAAA"}`)),
		enc([]byte(`{"user":"bob","by":"alice","User":"carol","device":null,"sig":null,"x":[1]}`)),
		enc([]byte(`{"user":"\u0000","by":"a\nb"}`)),
		enc([]byte(`null`)), enc([]byte(`[]`)), enc([]byte(`"x"`)), enc([]byte("\xff\xfe")),
		base64.URLEncoding.EncodeToString(goodJSON),
		base64.StdEncoding.EncodeToString(goodJSON),
		"", "=", "A", "AA", "AAA=", "-_-_", " " + good.Encode(), good.Encode() + "\n",
		strings.Repeat("A", MaxPassBytes), strings.Repeat("A", MaxPassBytes+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePass(s)
		if err != nil {
			line := err.Error()
			if !errors.Is(err, ErrBadPass) || strings.ContainsAny(line, "\r\n\x00") {
				t.Fatalf("error %q: want one line wrapping ErrBadPass", line)
			}
			if len(s) >= 16 && strings.Contains(line, s) {
				t.Fatalf("error %q quotes the input", line)
			}
			return
		}
		if len(s) > MaxPassBytes {
			t.Fatalf("accepted %d bytes, more than MaxPassBytes", len(s))
		}
		if err := p.Verify(); err != nil {
			t.Fatalf("accepted a pass that does not verify: %v", err)
		}
		e := p.Encode()
		if len(e) > MaxPassBytes {
			t.Fatalf("accepted pass encodes to %d bytes, more than MaxPassBytes", len(e))
		}
		q, err := ParsePass(e)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: got %+v %v, want %+v", q, err, p)
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if q, err := UnmarshalPass(js); err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("JSON round trip: got %+v %v, want %+v", q, err, p)
		}
	})
}
