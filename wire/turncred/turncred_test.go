package turncred

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/pion/turn/v5"
)

func TestCredentials(t *testing.T) {
	secret := []byte("0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		user     string
		ttl      time.Duration
		wantUser string
	}{
		{"ten minutes", "alice", 10 * time.Minute, "1800000600:alice"},
		{"zero", "bob", 0, "1800000000:bob"},
		{"clamped", "carol", 48 * time.Hour, "1800086400:carol"},
		{"max", "dave", MaxCredentialTTL, "1800086400:dave"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			username, password := Credentials(secret, tt.user, tt.ttl, now)
			if username != tt.wantUser {
				t.Errorf("username = %q, want %q", username, tt.wantUser)
			}
			if want := Password(secret, username); password != want {
				t.Errorf("password = %q, want %q", password, want)
			}
		})
	}
}

// TestCredentialsInterop checks the password against pion's own TURN-REST
// implementation of the same draft.
func TestCredentialsInterop(t *testing.T) {
	secret := "0123456789abcdef-interop"
	username, password, err := turn.GenerateLongTermTURNRESTCredentials(secret, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := strconv.ParseInt(strings.TrimSuffix(username, ":alice"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	gotUser, gotPass := Credentials([]byte(secret), "alice", time.Hour, time.Unix(exp, 0).Add(-time.Hour))
	if gotUser != username || gotPass != password {
		t.Errorf("Credentials = %q, %q; pion made %q, %q", gotUser, gotPass, username, password)
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in       string
		wantExp  int64
		wantUser string
		wantErr  bool
	}{
		{"1700000000:alice", 1700000000, "alice", false},
		{"1:a", 1, "a", false},
		{"9223372036854775807:z.z_z-9", 9223372036854775807, "z.z_z-9", false},
		{"1700000000:" + strings.Repeat("a", 32), 1700000000, strings.Repeat("a", 32), false},
		{"", 0, "", true},
		{"alice", 0, "", true},
		{"1700000000", 0, "", true},
		{":alice", 0, "", true},
		{"1700000000:", 0, "", true},
		{"01700000000:alice", 0, "", true},
		{"0:alice", 0, "", true},
		{"+1700000000:alice", 0, "", true},
		{"-1:alice", 0, "", true},
		{"17e9:alice", 0, "", true},
		{" 1700000000:alice", 0, "", true},
		{"1700000000:alice ", 0, "", true},
		{"1700000000:Alice", 0, "", true},
		{"1700000000:1alice", 0, "", true},
		{"1700000000:alice:x", 0, "", true},
		{"1700000000:al ice", 0, "", true},
		{"1700000000:" + strings.Repeat("a", 33), 0, "", true},
		{"9223372036854775808:alice", 0, "", true},  // int64 overflow
		{"99999999999999999999:alice", 0, "", true}, // 20 digits
		{"1700000000:al\x00ice", 0, "", true},
		{"١٧٠٠٠٠٠٠٠٠:alice", 0, "", true}, // non-ASCII digits
	}
	for _, tt := range tests {
		exp, user, err := ParseUsername(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseUsername(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadUsername) {
				t.Errorf("parseUsername(%q) err = %v, want ErrBadUsername", tt.in, err)
			}
			continue
		}
		if exp != tt.wantExp || user != tt.wantUser {
			t.Errorf("parseUsername(%q) = %d, %q; want %d, %q", tt.in, exp, user, tt.wantExp, tt.wantUser)
		}
	}
}

func TestCheckUsername(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	maxAhead := int64((MaxCredentialTTL + identity.Skew) / time.Second)
	name := func(exp int64) string { return strconv.FormatInt(exp, 10) + ":alice" }
	tests := []struct {
		name     string
		username string
		grace    time.Duration
		want     error
	}{
		{"valid", name(1_800_000_600), 0, nil},
		{"expired within grace", name(1_799_999_000), time.Hour, nil},
		{"expired beyond grace", name(1_799_996_400), time.Hour, ErrExpired},
		{"full ttl with grace", name(1_800_000_000 + 86400), time.Hour, nil},
		{"one second left", name(1_800_000_001), 0, nil},
		{"expires now", name(1_800_000_000), 0, ErrExpired},
		{"expired", name(1_799_999_000), 0, ErrExpired},
		{"at the far limit", name(1_800_000_000 + maxAhead), 0, nil},
		{"past the far limit", name(1_800_000_000 + maxAhead + 1), 0, ErrTooFarAhead},
		{"a year ahead", name(1_800_000_000 + 365*86400), 0, ErrTooFarAhead},
		{"malformed", "alice", 0, ErrBadUsername},
		{"bad user", "1800000600:Alice", 0, ErrBadUsername},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := CheckUsername(tt.username, now, tt.grace)
			if tt.want == nil {
				if err != nil || user != "alice" {
					t.Errorf("checkUsername(%q) = %q, %v; want alice, nil", tt.username, user, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("checkUsername(%q) err = %v, want %v", tt.username, err, tt.want)
			}
		})
	}
}

// FuzzParseUsername checks that the TURN-REST username parser, which reads
// bytes from anyone who can reach the relay, never panics, and that what it
// accepts is exactly a canonical "EXPIRY:user" with a valid user name.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"1700000000:alice", "1:a", "0:alice", "01:alice", "-1:alice", "+1:alice",
		"9223372036854775807:bob", "9223372036854775808:bob", "1700000000:Alice",
		"1700000000:alice:extra", ":", "", "1700000000:" + strings.Repeat("x", 40),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, user, err := ParseUsername(s)
		if err != nil {
			if !errors.Is(err, ErrBadUsername) {
				t.Fatalf("parseUsername(%q) err = %v, not ErrBadUsername", s, err)
			}
			if exp != 0 || user != "" {
				t.Fatalf("parseUsername(%q) returned %d, %q with an error", s, exp, user)
			}
			return
		}
		if exp <= 0 {
			t.Fatalf("parseUsername(%q) expiry %d", s, exp)
		}
		if cerr := identity.CheckUser(user); cerr != nil {
			t.Fatalf("parseUsername(%q) accepted bad user %q: %v", s, user, cerr)
		}
		if back := strconv.FormatInt(exp, 10) + ":" + user; back != s {
			t.Fatalf("parseUsername(%q) = %d, %q, which formats as %q", s, exp, user, back)
		}
	})
}
