package turncred

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN-REST (draft-uberti-behave-turn-rest) specifies HMAC-SHA1.
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley/parley/internal/identity"
)

// MaxCredentialTTL is the longest lifetime the relay accepts for a TURN-REST
// credential: a username whose expiry lies further ahead than this (plus
// identity.Skew of clock difference) is refused. Credentials clamps to it.
const MaxCredentialTTL = 24 * time.Hour

// maxExpiryDigits bounds the decimal expiry: int64 Unix seconds have at most 19.
const maxExpiryDigits = 19

// maxUsernameLen bounds a TURN-REST username: expiry, colon, user name.
const maxUsernameLen = maxExpiryDigits + 1 + identity.MaxUserLen

// Credentials makes TURN-REST credentials for user, valid until now+ttl (ttl is
// clamped to MaxCredentialTTL). The username is "EXPIRY:user" with EXPIRY the
// expiry in decimal Unix seconds; the password is
// base64(HMAC-SHA1(secret, username)) in standard padded base64. Supernodes call
// this for attached, authenticated clients and hand both strings to them as a
// WebRTC ICE server's username and credential; the relay recomputes the password
// from the username and its copy of the secret, so it keeps no per-credential
// state.
//
// An Allocate needs an unexpired credential. TURN clients also authenticate the
// refreshes of an allocation, its permissions and channels with the credential
// they allocated with, so without Config.RefreshGrace relaying stops within
// about ten minutes of the expiry: choose ttl to cover a call, or run relays
// with a grace.
//
// Credentials does not check user: the relay refuses usernames whose user
// breaks identity.CheckUser.
func Credentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	ttl = min(ttl, MaxCredentialTTL)
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, Password(secret, username)
}

// Password is the TURN-REST password of username.
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseUsername splits a TURN-REST username "EXPIRY:user" into its expiry (Unix
// seconds) and user name. EXPIRY is canonical decimal: digits only, no sign, no
// leading zero. user must pass identity.CheckUser. The input is untrusted bytes
// from the network.
func ParseUsername(username string) (expiry int64, user string, err error) {
	if len(username) > maxUsernameLen {
		return 0, "", fmt.Errorf("turncred: parse username: too long: %w", ErrBadUsername)
	}
	exp, user, ok := strings.Cut(username, ":")
	if !ok {
		return 0, "", fmt.Errorf("turncred: parse username: no colon: %w", ErrBadUsername)
	}
	if exp == "" || len(exp) > maxExpiryDigits || exp[0] == '0' {
		return 0, "", fmt.Errorf("turncred: parse username: expiry: %w", ErrBadUsername)
	}
	for i := 0; i < len(exp); i++ {
		if exp[i] < '0' || exp[i] > '9' {
			return 0, "", fmt.Errorf("turncred: parse username: expiry: %w", ErrBadUsername)
		}
	}
	expiry, perr := strconv.ParseInt(exp, 10, 64)
	if perr != nil {
		return 0, "", fmt.Errorf("turncred: parse username: expiry: %w", ErrBadUsername)
	}
	if cerr := identity.CheckUser(user); cerr != nil {
		return 0, "", fmt.Errorf("turncred: parse username: %w: %w", ErrBadUsername, cerr)
	}
	return expiry, user, nil
}

// CheckUsername parses username and checks its expiry against now: it must lie
// after now-grace, and at most MaxCredentialTTL (plus identity.Skew) after now.
func CheckUsername(username string, now time.Time, grace time.Duration) (user string, err error) {
	expiry, user, err := ParseUsername(username)
	if err != nil {
		return "", err
	}
	n := now.Unix()
	if expiry <= now.Add(-grace).Unix() {
		return "", fmt.Errorf("turncred: check username: %w", ErrExpired)
	}
	if expiry-n > int64((MaxCredentialTTL+identity.Skew)/time.Second) {
		return "", fmt.Errorf("turncred: check username: %w", ErrTooFarAhead)
	}
	return user, nil
}
