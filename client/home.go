package client

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parley/parley/wire/loginapi"
)

// The home directory (--home, PARLEY_HOME) holds one user's device state:
//
//	key          the device's Ed25519 private key seed (32 bytes), mode 0600
//	state.json   user, login URL, current credential, refresh token, pinned login
//	             server key, last supernode list; mode 0600. Never the password.
//	supernodes.json
//	             the host cache: every supernode seen (login server list, the
//	             lists supernodes hand out at attach), with its last successful
//	             attach, last measured round trip and failures in a row, so a
//	             client finds a supernode when the login server is down; at
//	             most 64 entries, dead ones aged out; mode 0600 (hostcache.go).
//	node-key     the node key it serves with once promoted to supernode
//	             (promote.go), mode 0600
//	x25519       the device's X25519 private key for end-to-end messages
//	             (im_keys.go), mode 0600
//	history.db   the message history, SQLite (history.go), mode 0600
//
// Several homes let several users run on one machine.
const (
	keyFile   = "key"
	stateFile = "state.json"
)

// State is what a home remembers between commands.
type State struct {
	User           string                   `json:"user"`
	LoginURL       string                   `json:"login_url"`
	Credential     string                   `json:"credential,omitempty"`
	Expires        int64                    `json:"expires,omitempty"`
	RefreshToken   string                   `json:"refresh_token,omitempty"`
	RefreshExpires int64                    `json:"refresh_expires,omitempty"`
	LoginKey       []byte                   `json:"login_key,omitempty"`
	Supernodes     []loginapi.SupernodeInfo `json:"supernodes,omitempty"`
}

type home struct{ dir string }

func openHome(dir string) (*home, error) {
	if dir == "" {
		return nil, fmt.Errorf("client: home: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("client: home %s: %w", dir, err)
	}
	return &home{dir: dir}, nil
}

// key loads the device key, making one on first use.
func (h *home) key() (ed25519.PrivateKey, error) {
	p := filepath.Join(h.dir, keyFile)
	seed, err := os.ReadFile(p)
	switch {
	case err == nil:
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("client: key %s: %w", p, ErrHomeCorrupt)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case errors.Is(err, fs.ErrNotExist):
		seed = make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		// Two commands starting at once in a new home must end up with one
		// key: the first to link its file wins, the other reads it.
		err := writeFileExclusive(p, seed)
		if errors.Is(err, fs.ErrExist) {
			return h.key()
		}
		if err != nil {
			return nil, fmt.Errorf("client: key %s: %w", p, err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	default:
		return nil, fmt.Errorf("client: key %s: %w", p, err)
	}
}

func (h *home) load() (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(h.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("client: state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("client: state %s: %w", h.dir, ErrHomeCorrupt)
	}
	return st, nil
}

func (h *home) save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("client: state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(h.dir, stateFile), b); err != nil {
		return fmt.Errorf("client: state: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to a private temporary file and renames it over p, so
// a crash never leaves a half-written key or state, and concurrent commands in
// one home never read a torn file.
func writeFileAtomic(p string, b []byte) error {
	return writeTemp(p, b, os.Rename)
}

// writeFileExclusive is writeFileAtomic that fails with fs.ErrExist when p exists.
func writeFileExclusive(p string, b []byte) error {
	return writeTemp(p, b, os.Link)
}

func writeTemp(p string, b []byte, place func(tmp, p string) error) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return place(f.Name(), p)
}

// A device's encryption key. Next to the Ed25519 "key" of home.go a home holds
//
//	x25519       the device's X25519 private key (32 bytes), mode 0600, made
//	             on first use
//
// Messages are encrypted to it (package im). The device publishes its public half
// at the login server in a [DeviceRecord] signed with its Ed25519 key, so that
// a sender can check every record it is handed: the login server, which stores
// and serves the records, cannot substitute a key of its own.
const x25519File = "x25519"

// deviceX25519 loads the X25519 key of the home in dir, making one on first
// use. Two commands starting at once in a new home end up with one key: the
// first to link its file wins, the other reads it.
func deviceX25519(dir string) (*ecdh.PrivateKey, error) {
	p := filepath.Join(dir, x25519File)
	for range 2 {
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			k, err := ecdh.X25519().NewPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("client: x25519 key %s: %w", p, ErrHomeCorrupt)
			}
			return k, nil
		case errors.Is(err, fs.ErrNotExist):
			k, err := ecdh.X25519().GenerateKey(rand.Reader)
			if err != nil {
				return nil, fmt.Errorf("client: x25519 key %s: %w", p, err)
			}
			err = writeFileExclusive(p, k.Bytes())
			if errors.Is(err, fs.ErrExist) {
				continue // another command made it first: read theirs
			}
			if err != nil {
				return nil, fmt.Errorf("client: x25519 key %s: %w", p, err)
			}
			return k, nil
		default:
			return nil, fmt.Errorf("client: x25519 key %s: %w", p, err)
		}
	}
	return nil, fmt.Errorf("client: x25519 key %s: %w", p, ErrHomeCorrupt)
}
