package client

import (
	"crypto/ecdh"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestIMDeviceKeyFile(t *testing.T) {
	dir := t.TempDir()
	// Commands starting at once in a new home end up with one key.
	keys := make([]*ecdh.PrivateKey, 4)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := deviceX25519(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || !k.Equal(keys[0]) {
			t.Fatal("concurrent first uses made different keys")
		}
	}
	p := filepath.Join(dir, x25519File)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode %v, want 0600", got)
	}
	again, err := deviceX25519(dir)
	if err != nil || !again.Equal(keys[0]) {
		t.Fatalf("reload: %v", err)
	}
	if err := os.WriteFile(p, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := deviceX25519(dir); !errors.Is(err, ErrHomeCorrupt) {
		t.Fatalf("corrupt key file: err = %v, want ErrHomeCorrupt", err)
	}
}
