package snapi

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func busyResponse(status int, retryAfter, body string) *http.Response {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func TestBusyError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		want       time.Duration // 0: not a busy refusal
		wantReason string
	}{
		{"busy", 503, "3", `{"error":"busy","reason":"attach_rate","retry_after":3}`, 3 * time.Second, "attach_rate"},
		{"no body", 503, "2", "", 2 * time.Second, ""},
		{"zero is a second", 503, "0", "", time.Second, ""},
		{"negative is a second", 503, "-5", "", time.Second, ""},
		{"too long is capped", 503, "86400", "", MaxRetryAfter, ""},
		{"huge is capped", 503, "9223372036854775807", "", MaxRetryAfter, ""},
		{"a date is the cap", 503, "Wed, 21 Oct 2026 07:28:00 GMT", "", MaxRetryAfter, ""},
		{"reason cleaned", 503, "1", "{\"reason\":\"a\\u0007b\\nc\"}", time.Second, "a?b?c"},
		{"503 without Retry-After: closing, not busy", 503, "", "", 0, ""},
		{"another status", 429, "3", "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := busyError("sn:1", busyResponse(tt.status, tt.retryAfter, tt.body))
			if tt.want == 0 {
				if got != nil {
					t.Fatalf("got %v, want no busy refusal", got)
				}
				return
			}
			if got == nil || got.RetryAfter != tt.want || got.Reason != tt.wantReason || !errors.Is(got, ErrBusy) {
				t.Fatalf("got %+v, want Retry-After %v reason %q", got, tt.want, tt.wantReason)
			}
		})
	}
	if busyError("sn:1", nil) != nil {
		t.Error("a nil response is not a busy refusal")
	}
}

// A busy refusal's header and body come from the network: whatever they
// hold, the wait is between 1 s and MaxRetryAfter and the reason one short
// printable line.
func FuzzBusyError(f *testing.F) {
	f.Add("2", []byte(`{"error":"busy","reason":"memory","retry_after":2}`))
	f.Add("x", []byte(`{`))
	f.Add("-1", []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		resp := &http.Response{StatusCode: BusyStatus, Header: h, Body: io.NopCloser(strings.NewReader(string(body)))}
		b := busyError("sn:1", resp)
		if b == nil {
			if strings.TrimSpace(h.Get("Retry-After")) != "" {
				t.Fatalf("Retry-After %q not read as busy", retryAfter)
			}
			return
		}
		if b.RetryAfter < time.Second || b.RetryAfter > MaxRetryAfter || len(b.Reason) > 40 {
			t.Fatalf("busy %+v out of bounds", b)
		}
		for _, c := range []byte(b.Reason) {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("reason %q not printable", b.Reason)
			}
		}
	})
}
