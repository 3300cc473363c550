package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parley/parley/client/im"
)

// The state of files in transfer, in the home (docs/files.md):
//
//	files/in/KEY.json   a file offered to this device: the offer (with its
//	                    key), who offered it, the download directory its
//	                    .part file is in, and which chunks are on disk
//	                    (fsynced before they are recorded)
//	files/out/ID.json   a file this device sends: the offer, the source
//	                    file (path, size, modification time) and the
//	                    recipients
//
// Mode 0600 in a 0700 directory: they hold the files' keys. Written to a
// temporary file and renamed, so a crash leaves the old state or the new.
const (
	filesDir      = "files"
	fileStateV    = 1
	partPrefix    = ".parley-"
	partSuffix    = ".part"
	maxStateBytes = 1 << 20
)

// inFile is a file offered to this device (files/in/ID.json).
type inFile struct {
	V     int           `json:"v"`
	Offer *im.FileOffer `json:"offer"`
	From  string        `json:"from"`
	// Group is the group id of a group's file; MID its history id.
	Group string `json:"group,omitempty"`
	MID   string `json:"mid,omitempty"`
	// Dir is the download directory the .part file is in (set when the
	// first chunk is fetched).
	Dir string `json:"dir,omitempty"`
	// Have is a bitmap of the chunks on disk: bit i%8 of byte i/8.
	Have []byte `json:"have"`
	// Fetched counts the sealed bytes fetched, over every attempt (what
	// was fetched and then lost to a crash counts twice).
	Fetched int64 `json:"fetched"`
	// Done: the file is in Path, its hash checked. Failed: it never will
	// be (why).
	Done   bool   `json:"done,omitempty"`
	Path   string `json:"path,omitempty"`
	Failed string `json:"failed,omitempty"`
	// Offered is when the offer came, Unix milliseconds.
	Offered int64 `json:"offered"`
}

// outFile is a file this device sends (files/out/ID.json).
type outFile struct {
	V     int           `json:"v"`
	Offer *im.FileOffer `json:"offer"`
	// Source, Size and ModTime (Unix nanoseconds) name the file sent: a
	// send of the same file to the same recipient resumes this one.
	Source  string `json:"source"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"`
	To      string `json:"to"`
	Group   string `json:"group,omitempty"`
	MID     string `json:"mid,omitempty"`
	Seq     int64  `json:"seq,omitempty"`
	// Offered: the offer went out (after the upload).
	Offered bool `json:"offered,omitempty"`
}

func (f *inFile) has(i int64) bool { return int(i/8) < len(f.Have) && f.Have[i/8]&(1<<(i%8)) != 0 }

func (f *inFile) set(i int64) {
	if n := int(f.Offer.Chunks()+7) / 8; len(f.Have) != n {
		f.Have = append(f.Have, make([]byte, max(0, n-len(f.Have)))...)[:n]
	}
	f.Have[i/8] |= 1 << (i % 8)
}

// missing returns the first chunk not on disk, or Chunks() if none.
func (f *inFile) missing() int64 {
	n := f.Offer.Chunks()
	for i := range n {
		if !f.has(i) {
			return i
		}
	}
	return n
}

// onDisk returns the plaintext bytes of the chunks on disk.
func (f *inFile) onDisk() int64 {
	var b int64
	for i := range f.Offer.Chunks() {
		if f.has(i) {
			b += min(int64(im.FileChunk), f.Offer.Size-i*im.FileChunk)
		}
	}
	return b
}

// inKey names an incoming file in the home and its .part file: the
// SHA-256 of its sender and id (first 16 bytes, hex), so that an offer
// from one user can never take the place of another's that has the same
// id (a file's id crosses supernodes in the clear).
func inKey(from, id string) string {
	h := sha256.Sum256([]byte(from + "\x00" + id))
	return hex.EncodeToString(h[:16])
}

// key is f's inKey.
func (f *inFile) key() string { return inKey(f.From, f.Offer.ID) }

// partPath is the .part file of the incoming file key in dir.
func partPath(dir, id string) string { return filepath.Join(dir, partPrefix+id+partSuffix) }

// fileStatePath returns files/WHICH/ID.json in the home in dir.
func fileStatePath(home, which, id string) string {
	return filepath.Join(home, filesDir, which, id+".json")
}

// saveState writes v to path, atomically, mode 0600.
func saveState(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client: file state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("client: file state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("client: file state: %w", err)
	}
	return nil
}

// loadState reads path into v; a state that does not parse, or whose offer
// does not check, is ErrHomeCorrupt.
func loadState(path string, v any, offer func() *im.FileOffer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) > maxStateBytes {
		return fmt.Errorf("client: file state %s: %w", path, ErrHomeCorrupt)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: file state %s: %w", path, ErrHomeCorrupt)
	}
	if o := offer(); o == nil || o.Check() != nil {
		return fmt.Errorf("client: file state %s: %w", path, ErrHomeCorrupt)
	}
	return nil
}

// loadIn loads the incoming file key (its inKey).
func loadIn(home, key string) (*inFile, error) {
	var f inFile
	path := fileStatePath(home, "in", key)
	if err := loadState(path, &f, func() *im.FileOffer { return f.Offer }); err != nil {
		return nil, err
	}
	if f.key() != key {
		return nil, fmt.Errorf("client: file state %s: %w", path, ErrHomeCorrupt)
	}
	return &f, nil
}

func loadOut(home, id string) (*outFile, error) {
	var f outFile
	path := fileStatePath(home, "out", id)
	if err := loadState(path, &f, func() *im.FileOffer { return f.Offer }); err != nil {
		return nil, err
	}
	if f.Offer.ID != id {
		return nil, fmt.Errorf("client: file state %s: %w", path, ErrHomeCorrupt)
	}
	return &f, nil
}

// stateIDs lists the ids of files/WHICH, oldest first.
func stateIDs(home, which string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(home, filesDir, which))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: file states: %w", err)
	}
	type idAt struct {
		id string
		at time.Time
	}
	var ids []idAt
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".json")
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if info, err := de.Info(); err == nil {
			ids = append(ids, idAt{id, info.ModTime()})
		}
	}
	slices.SortFunc(ids, func(a, b idAt) int { return a.at.Compare(b.at) })
	out := make([]string, len(ids))
	for i, x := range ids {
		out[i] = x.id
	}
	return out, nil
}

// stateTTL is how long the state of a finished transfer (received, given
// up, or sent and offered) is kept: a repeat of its offer within it is
// recognised.
const stateTTL = 30 * 24 * time.Hour

// pruneStates deletes the states of transfers finished more than stateTTL
// ago.
func pruneStates(home string, now time.Time) {
	for _, which := range []string{"in", "out"} {
		ids, _ := stateIDs(home, which)
		for _, id := range ids {
			p := fileStatePath(home, which, id)
			st, err := os.Stat(p)
			if err != nil || now.Sub(st.ModTime()) < stateTTL {
				continue
			}
			finished := false
			if which == "in" {
				f, err := loadIn(home, id)
				finished = err == nil && (f.Done || f.Failed != "")
			} else {
				f, err := loadOut(home, id)
				finished = err == nil && f.Offered
			}
			if finished {
				os.Remove(p)
				os.Remove(strings.TrimSuffix(p, ".json") + ".fetched")
			}
		}
	}
}
