package login

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// fuzzRoutes are the endpoints that decode untrusted request bodies (and the
// path-parameter one).
// The user endpoints (auth true) get a valid credential of alice, whose
// device is registered, so that bodies reach the checks behind the
// authentication.
var fuzzRoutes = []struct {
	method, path string
	auth         bool
}{
	{"POST", "/api/v1/register", false},
	{"POST", "/api/v1/login", false},
	{"POST", "/api/v1/refresh", false},
	{"POST", "/api/v1/password", false},
	{"POST", "/api/v1/supernodes", false},
	{"DELETE", "/api/v1/supernodes", false},
	{"GET", "/api/v1/users/alice", false},
	{"PUT", "/api/v1/devices/self", true},        // 7
	{"POST", "/api/v1/mailbox", true},            // 8
	{"POST", "/api/v1/mailbox/ack", true},        // 9
	{"PUT", "/api/v1/status", true},              // 10
	{"POST", "/api/v1/contacts/bob", true},       // 11
	{"GET", "/api/v1/mailbox?limit=5", true},     // 12
	{"GET", "/api/v1/users?prefix=al", true},     // 13
	{"GET", "/api/v1/users/alice/devices", true}, // 14
	{"POST", "/api/v1/files", true},              // 15
}

// FuzzHandler sends arbitrary bodies to every JSON endpoint: the handler must
// never panic and must answer 2xx or 4xx, with a one-line JSON error on 4xx.
func FuzzHandler(f *testing.F) {
	seeds := []string{
		`{"user":"alice","password":"password1"}`,
		`{"user":"alice","password":"password1","public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}`,
		`{"user":"alice","refresh_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}`,
		`{"user":"alice","password":"password1","new_password":"password2"}`,
		`{"addr":"ws://10.0.0.1:7000/v1/ws"}`,
		`{"user":1}`, `[]`, `null`, ``, `{`, `{"user":"\u0000"}`, "\xff\xfe", `{"addr":"ws://[::1]:1"}`,
		`{"addr":"ws://10.0.0.1:7000/v1/ws","key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","ts":1800000000,"sig":"AAAA"}`,
		`{"addr":"ws://10.0.0.1:7000/v1/ws","key":"","ts":1e99,"sig":null}`,
		`{"addr":"ws://10.0.0.1:7000/v1/ws","ts":-9223372036854775808}`,
	}
	clock := newClock()
	// Correctly signed heartbeats and leaves (for the fuzzer's clock), so
	// that mutations start from requests that get past the signature check.
	// The default DialBackAllow refuses 10.0.0.1 and 127.0.0.1: no dial-back
	// leaves the process.
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	node := newPriv(f)
	for _, a := range []string{"ws://10.0.0.1:7000/v1/ws", "ws://127.0.0.1:1/"} {
		for _, r := range []struct {
			route uint8
			ctx   string
		}{{4, loginapi.HeartbeatContext}, {5, loginapi.LeaveContext}} {
			b, err := json.Marshal(signedBody(a, node, clock.Now().Unix(), r.ctx))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(r.route, b)
		}
	}
	srv, err := New(Config{DataDir: f.TempDir(), Argon2: cheapArgon, Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	// Known accounts so that password checks run, and a credential and
	// registered device of alice for the user endpoints.
	for _, body := range []string{seeds[0], `{"user":"bob","password":"password1"}`} {
		req := httptest.NewRequest("POST", "/api/v1/register", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	dev := newPriv(f)
	now := clock.Now()
	cred, err := identity.Issue(srv.priv, identity.Credential{User: "alice", PublicKey: pubOf(dev),
		NotBefore: now.Unix(), Expires: now.Add(100 * 365 * 24 * time.Hour).Unix()})
	if err != nil {
		f.Fatal(err)
	}
	x := make([]byte, loginapi.X25519KeySize)
	devBody, _ := json.Marshal(loginapi.DeviceRequest{X25519: b64(x), Sig: b64(loginapi.SignDevice(dev, "alice", x))})
	req := httptest.NewRequest("PUT", "/api/v1/devices/self", bytes.NewReader(devBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Parley "+cred)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		f.Fatalf("device registration: %d %s", rec.Code, rec.Body)
	}
	f.Add(uint8(7), devBody)
	passJSON, _ := json.Marshal(loginapi.NewPass("bob", "alice", dev))
	for _, sd := range []struct {
		route uint8
		body  string
	}{
		{8, `{"items":[{"to_user":"alice","to_device":"` + b64(pubOf(dev)) + `","id":"m1","blob":{"ct":"AAAA"}}]}`},
		{8, `{"items":[{"to_user":"alice","to_device":"` + b64(pubOf(dev)) + `","id":"m2","blob":"x"},{"to_user":"bob","to_device":"` + b64(pubOf(dev)) + `","id":"m2","blob":1}]}`},
		{8, `{"items":[{"to_user":"nobody","to_device":"","id":"","blob":null}]}`},
		{8, `{"items":{}}`},
		{8, `{"items":[{"to_user":"bob","to_device":"` + b64(pubOf(dev)) + `","id":"m3","blob":1,"pass":` + string(passJSON) + `}]}`},
		{8, `{"items":[{"to_user":"alice","to_device":"` + b64(pubOf(dev)) + `","id":"m4","blob":1,"pass":{"user":"bob","by":"alice","device":"AAAA","sig":null}}]}`},
		{9, `{"seqs":[1,2,-1,9223372036854775807]}`},
		{9, `{"seqs":"1"}`},
		{10, `{"status":"invisible"}`},
		{10, `{"status":"offline"}`},
		{11, ``},
		{12, ``},
		{13, ``},
		{14, ``},
		{15, `{"id":"00112233445566778899aabbccddeeff","size":1,"recipients":["bob"]}`},
		{15, `{"id":"00112233445566778899aabbccddeefF","size":104857601,"recipients":["bob","alice","bob","nobody"]}`},
		{15, `{"id":"00112233445566778899aabbccddeeff","size":-1,"recipients":null}`},
	} {
		f.Add(sd.route, []byte(sd.body))
	}

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if r.auth {
			req.Header.Set("Authorization", "Parley "+cred)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// 507: a mailbox the fuzzer filled.
		if rec.Code < 200 || (rec.Code >= 500 && rec.Code != http.StatusInsufficientStorage) || (rec.Code >= 300 && rec.Code < 400) {
			t.Fatalf("%s %s %q: status %d %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s %q: answer %d not JSON: %q", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			msg, ok := m["error"].(string)
			if !ok || msg == "" || bytes.ContainsAny([]byte(msg), "\r\n") {
				t.Fatalf("%s %s %q: bad error body %q", r.method, r.path, body, rec.Body)
			}
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
		}
		if rec.Code == http.StatusTooManyRequests {
			clock.Advance(DefaultFailureWindow) // keep exploring past the limiter
		}
	})
}

// FuzzParseHash feeds arbitrary stored hashes to the PHC decoder: it must
// never panic, and what it accepts must be within bounds, name each
// parameter once and survive a canonical re-encoding.
func FuzzParseHash(f *testing.F) {
	good, err := hashPassword("password1", cheapArgon.withDefaults())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		good,
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=19456,t=2,p=1,m=4194304$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$t=2,p=1,m=19456$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255$c2FsdA$aGFzaA",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$$",
		"$argon2id$v=19$m=,t=,p=$$",
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA==",
		"", "$", "$$$$$", "garbage", "$argon2id$v=19$m=19456,t=2,p=1$\xff$\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parseHash(s)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("parseHash(%q): error %v is not ErrBadHash", s, err)
			}
			return
		}
		if cerr := p.check(); cerr != nil {
			t.Fatalf("parseHash(%q) accepted out-of-range %+v: %v", s, p, cerr)
		}
		if int(p.SaltLen) != len(salt) || int(p.KeyLen) != len(key) {
			t.Fatalf("parseHash(%q): lengths %+v, salt %d, key %d", s, p, len(salt), len(key))
		}
		if parts := strings.Split(s, "$"); len(parts) != 6 || strings.Count(parts[3], ",") != 2 {
			t.Fatalf("parseHash(%q) accepted a parameter list that is not m, t and p once each", s)
		}
		canon := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Time, p.Threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
		p2, salt2, key2, err := parseHash(canon)
		if err != nil || p2 != p || !bytes.Equal(salt2, salt) || !bytes.Equal(key2, key) {
			t.Fatalf("re-encoding %q as %q: %+v %v", s, canon, p2, err)
		}
		// Cheap parameters: the verification itself must not panic either.
		if p.Memory <= 64 && p.Time <= 2 && p.Threads <= 2 {
			verifyPassword("password1", s, cheapArgon.withDefaults())
		}
	})
}
