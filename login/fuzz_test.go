package login

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzRoutes are the endpoints that decode untrusted request bodies (and the
// path-parameter one).
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/register"},
	{"POST", "/api/v1/login"},
	{"POST", "/api/v1/refresh"},
	{"POST", "/api/v1/password"},
	{"POST", "/api/v1/supernodes"},
	{"DELETE", "/api/v1/supernodes"},
	{"GET", "/api/v1/users/alice"},
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
		}{{4, HeartbeatContext}, {5, LeaveContext}} {
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
	// One known account so that password checks run.
	req := httptest.NewRequest("POST", "/api/v1/register", bytes.NewReader([]byte(seeds[0])))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(httptest.NewRecorder(), req)

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code >= 500 || (rec.Code >= 300 && rec.Code < 400) {
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
