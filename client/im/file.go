package im

// Files (docs/protocol.md, "Files"). A file travels as an offer and its
// chunks. The offer — name, size, type, the SHA-256 of the whole file, the
// file's key, a preview — goes like a message (an envelope of kind
// [KindFile], [FileBody]), so it is
// signed by the sender's device and sealed to the recipients' devices; the
// signed hash is what a receiver checks the whole file against before it
// shows the file as received. The chunks are sealed with the file's key,
// each on its own ([SealChunk]): whoever carries them — a data channel on
// any path, a relay, the login server's store — sees only ciphertext of
// known sizes. (To a group, the offer is a [KindFile] envelope to each
// member, its body naming the group: filebody.go.)

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// KindFile is the envelope kind of a file offer to a user; its body is a
// [FileOffer].
const KindFile = "file"

// File limits.
const (
	// FileChunk is the plaintext size of every chunk but the last.
	FileChunk = 64 << 10
	// MaxFileName caps a file name, in bytes of UTF-8.
	MaxFileName = 255
	// MaxFileSize caps a file this client sends or takes (a store or a
	// relay may have lower caps of their own).
	MaxFileSize = 4 << 30
	// MaxPreview caps the preview an offer carries (a small JPEG or PNG
	// the sender made).
	MaxPreview = 24 << 10
	// FileKeyLen is the length of a file's key (AES-256).
	FileKeyLen = 32
	// FileChunkContext starts the associated data of every sealed chunk.
	FileChunkContext = "parley-file-v1"
	// MaxFileType caps an offer's media type, in bytes.
	MaxFileType = 100
)

// FileOffer is the body of a file offer, JSON.
//
//   - ID: 16 random bytes, 32 hex characters: the file's id.
//   - Name: the file's name as the sender had it, without a directory: 1 to
//     MaxFileName bytes of UTF-8, no "/", "\", NUL or control characters,
//     not "." or "..". A receiver still makes its own name of it
//     ([SafeFileName]).
//   - Size: the file's size in bytes, 1 to MaxFileSize.
//   - Type: its media type ("image/jpeg"), or "".
//   - Hash: the SHA-256 of the whole file, hex.
//   - Key: the file's AES-256 key (base64 in JSON).
//   - Preview: a small image of the file (pictures), at most MaxPreview.
//   - Stored: the chunks are also in the login server's store (the
//     sender could not reach every recipient device at once).
type FileOffer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Type    string `json:"type,omitempty"`
	Hash    string `json:"hash"`
	Key     []byte `json:"key"`
	Preview []byte `json:"preview,omitempty"`
	Stored  bool   `json:"stored,omitempty"`
}

// Chunks returns how many chunks the file has.
func (f *FileOffer) Chunks() int64 { return ChunksOf(f.Size) }

// ChunksOf returns how many chunks a file of size bytes has.
func ChunksOf(size int64) int64 { return (size + FileChunk - 1) / FileChunk }

// NewFileOffer returns an offer for a file of the given name, size, media
// type and SHA-256, with a new id and key.
func NewFileOffer(name string, size int64, typ string, sum []byte) (*FileOffer, error) {
	f := &FileOffer{ID: NewMessageID(), Name: name, Size: size, Type: typ, Hash: hex.EncodeToString(sum), Key: make([]byte, FileKeyLen)}
	rand.Read(f.Key)
	if err := f.Check(); err != nil {
		return nil, err
	}
	return f, nil
}

// Check checks an offer's form.
func (f *FileOffer) Check() error {
	bad := func(what string) error { return fmt.Errorf("file offer: %s: %w", what, ErrBadFile) }
	switch {
	case !validID(f.ID):
		return bad("id")
	case CheckFileName(f.Name) != nil:
		return fmt.Errorf("file offer: %w", CheckFileName(f.Name))
	case f.Size < 1 || f.Size > MaxFileSize:
		return fmt.Errorf("file offer: %d bytes, 1 to %d: %w", f.Size, int64(MaxFileSize), ErrFileTooBig)
	case len(f.Type) > MaxFileType || (f.Type != "" && !validMediaType(f.Type)):
		return bad("type")
	case len(f.Hash) != 64 || strings.Trim(f.Hash, "0123456789abcdef") != "":
		return bad("hash")
	case len(f.Key) != FileKeyLen:
		return bad("key")
	case len(f.Preview) > MaxPreview:
		return bad("preview")
	}
	return nil
}

func validMediaType(t string) bool {
	mt, _, err := mime.ParseMediaType(t)
	return err == nil && mt == t
}

// CheckFileName reports whether name can name a file in an offer.
func CheckFileName(name string) error {
	switch {
	case name == "" || len(name) > MaxFileName || !utf8.ValidString(name):
		return fmt.Errorf("file name: 1 to %d bytes of UTF-8: %w", MaxFileName, ErrBadFileName)
	case name == "." || name == "..":
		return fmt.Errorf("file name %q: %w", name, ErrBadFileName)
	case strings.ContainsAny(name, "/\\\x00") || strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("file name %q: a directory or a control character: %w", name, ErrBadFileName)
	}
	return nil
}

// SafeFileName returns the name a receiver gives a file offered as name:
// the offer's name (checked already) with anything that could mean more
// than a name on some system replaced — a leading dot (hidden), Windows'
// reserved device names and characters, trailing dots and spaces — and
// never empty.
func SafeFileName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case strings.ContainsRune(`<>:"|?*/\`, r) || r < 0x20 || unicode.IsControl(r):
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimRight(b.String(), ". ")
	s = strings.TrimLeft(s, ".")
	base := strings.ToUpper(s)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	switch base {
	case "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		s = "_" + s
	}
	if s == "" {
		s = "file"
	}
	return s
}

// chunkAD is a chunk's associated data: FileChunkContext, the file id,
// the chunk's index and the number of chunks (so none can be moved,
// dropped from the end or taken from another file).
func chunkAD(id string, index, chunks int64) []byte {
	ad := append([]byte(FileChunkContext), id...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(index))
	return binary.BigEndian.AppendUint64(ad, uint64(chunks))
}

func chunkNonce(index int64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], uint64(index))
	return n
}

// SealChunk seals chunk index of the file: AES-256-GCM under the file's
// key, nonce = 4 zero bytes then the index (8 bytes, big-endian), with
// [chunkAD] as associated data. Every chunk but the last is FileChunk
// bytes.
func (f *FileOffer) SealChunk(index int64, plain []byte) ([]byte, error) {
	if err := f.chunkSize(index, len(plain)); err != nil {
		return nil, err
	}
	aead, err := newAEAD(f.Key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, chunkNonce(index), plain, chunkAD(f.ID, index, f.Chunks())), nil
}

// OpenChunk opens chunk index of the file, refusing one that was altered,
// belongs elsewhere, or has the wrong size.
func (f *FileOffer) OpenChunk(index int64, sealed []byte) ([]byte, error) {
	if err := f.chunkSize(index, len(sealed)-AEADOverhead); err != nil {
		return nil, err
	}
	aead, err := newAEAD(f.Key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, chunkNonce(index), sealed, chunkAD(f.ID, index, f.Chunks()))
	if err != nil {
		return nil, fmt.Errorf("file %s: chunk %d: %w", f.ID, index, ErrDecrypt)
	}
	return plain, nil
}

// chunkSize checks that n bytes is the plaintext size of chunk index.
func (f *FileOffer) chunkSize(index int64, n int) error {
	chunks := f.Chunks()
	if index < 0 || index >= chunks {
		return fmt.Errorf("file %s: chunk %d of %d: %w", f.ID, index, chunks, ErrBadFile)
	}
	want := int64(FileChunk)
	if index == chunks-1 {
		want = f.Size - index*FileChunk
	}
	if int64(n) != want {
		return fmt.Errorf("file %s: chunk %d: %d bytes, want %d: %w", f.ID, index, n, want, ErrBadFile)
	}
	return nil
}
