package loginapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestStoreChunkSizes: chunk counts and sealed lengths at the edges.
func TestStoreChunkSizes(t *testing.T) {
	for _, tt := range []struct {
		size, index    int64
		chunks, sealed int64
	}{
		{1, 0, 1, 17},
		{StoreChunk - 1, 0, 1, StoreChunk + 15},
		{StoreChunk, 0, 1, StoreChunk + 16},
		{StoreChunk + 1, 0, 2, StoreChunk + 16},
		{StoreChunk + 1, 1, 2, 17},
		{StoreChunk + 1, 2, 2, -1},
		{3 * StoreChunk, 2, 3, StoreChunk + 16},
		{100 << 20, 1599, 1600, StoreChunk + 16},
		{100 << 20, -1, 1600, -1},
		{0, 0, 0, -1},
		{-5, 0, 0, -1},
	} {
		if got := StoreChunks(tt.size); got != tt.chunks {
			t.Errorf("StoreChunks(%d) = %d, want %d", tt.size, got, tt.chunks)
		}
		if got := SealedChunkSize(tt.size, tt.index); got != tt.sealed {
			t.Errorf("SealedChunkSize(%d, %d) = %d, want %d", tt.size, tt.index, got, tt.sealed)
		}
	}
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"00112233445566778899aabbccddeeff", true},
		{"00112233445566778899AABBCCDDEEFF", false},
		{"00112233445566778899aabbccddeef", false},
		{"00112233445566778899aabbccddeeff0", false},
		{"0011223344556677889/aabbccddeeff", false},
		{"", false},
	} {
		if err := CheckFileID(tt.id); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadRequest)) {
			t.Errorf("CheckFileID(%q): %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}

// TestFileStoreAnswers: the file store calls map the server's answers to
// their sentinels, and refuse answers that cannot be right.
func TestFileStoreAnswers(t *testing.T) {
	const id = "00112233445566778899aabbccddeeff"
	answer := func(status int, body []byte) *Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return NewClient(srv.URL, nil)
	}
	jsonAnswer := func(status int, v any) *Client {
		b, _ := json.Marshal(v)
		return answer(status, b)
	}
	errAnswer := func(status int, msg string) *Client { return jsonAnswer(status, ErrorResponse{Error: msg}) }
	ctx := t.Context()
	create := func(c *Client) error { return c.CreateStoredFile(ctx, "cred", id, 10, []string{"bob"}) }
	get := func(c *Client) error { _, err := c.GetChunk(ctx, "cred", id, 0); return err }
	info := func(c *Client) error { _, err := c.StoredFile(ctx, "cred", id); return err }
	put := func(c *Client) error { return c.PutChunk(ctx, "cred", id, 0, make([]byte, 26)) }
	del := func(c *Client) error { return c.DeleteStoredFile(ctx, "cred", id) }
	good := StoredFileInfo{ID: id, Owner: "alice", Size: StoreChunk + 1, Chunks: 2, Have: 1}
	for _, tt := range []struct {
		name string
		call func(*Client) error
		c    *Client
		want []error
		not  error
	}{
		{"create, unknown recipient", create, errAnswer(404, "unknown user: recipients[0] bob"), []error{ErrUnknownUser}, ErrUnknownFile},
		{"create, taken", create, errAnswer(409, "file id already in use: another user's stored file has id "+id), []error{ErrFileExists}, ErrUserExists},
		{"create, too large", create, errAnswer(413, "too large: a stored file is at most 100 bytes, not 101"), []error{ErrTooLarge, ErrBadRequest}, nil},
		{"create, quota", create, errAnswer(507, "quota exceeded: your stored files hold 1 bytes; …"), []error{ErrQuota}, nil},
		{"create, created", create, jsonAnswer(201, good), nil, nil},
		{"put, not the owner", put, errAnswer(404, "no such stored file: you own no stored file "+id), []error{ErrUnknownFile}, ErrNoChunk},
		{"put, wrong length", put, errAnswer(400, "chunk 0 is 26 bytes, want 65552 (its plaintext and the 16-byte tag)"), []error{ErrBadRequest}, nil},
		{"put, stored", put, answer(204, nil), nil, nil},
		{"get, missing chunk", get, errAnswer(404, "chunk not stored: chunk 0 of file "+id+" has not been uploaded"), []error{ErrNoChunk}, ErrUnknownFile},
		{"get, no file", get, errAnswer(404, "no such stored file: no stored file for you has id "+id), []error{ErrUnknownFile}, ErrNoChunk},
		{"get, a 404 from a proxy", get, answer(404, []byte("404 page not found")), []error{ErrServer}, ErrUnknownFile},
		{"get, only a tag", get, answer(200, make([]byte, StoreChunkOverhead)), []error{ErrServer}, nil},
		{"get, too long", get, answer(200, make([]byte, MaxStoredChunk+1)), []error{ErrServer}, nil},
		{"get, a chunk", get, answer(200, make([]byte, MaxStoredChunk)), nil, nil},
		{"info", info, jsonAnswer(200, good), nil, nil},
		{"info, another id", info, jsonAnswer(200, StoredFileInfo{ID: "ff112233445566778899aabbccddeeff", Size: 1, Chunks: 1}), []error{ErrServer}, nil},
		{"info, more chunks than the size", info, jsonAnswer(200, StoredFileInfo{ID: id, Size: 1, Chunks: 2}), []error{ErrServer}, nil},
		{"info, complete without the chunks", info, jsonAnswer(200, StoredFileInfo{ID: id, Size: 1, Chunks: 1, Complete: true}), []error{ErrServer}, nil},
		{"info, no file", info, errAnswer(404, "no such stored file: no stored file for you has id "+id), []error{ErrUnknownFile}, nil},
		{"delete, no file", del, errAnswer(404, "no such stored file: no stored file for you has id "+id), []error{ErrUnknownFile}, nil},
		{"delete", del, jsonAnswer(200, StoredFileDeleted{Deleted: false}), nil, nil},
	} {
		err := tt.call(tt.c)
		if tt.want == nil && err != nil {
			t.Errorf("%s: %v, want success", tt.name, err)
		}
		for _, w := range tt.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v, want %v", tt.name, err, w)
			}
		}
		if tt.not != nil && errors.Is(err, tt.not) {
			t.Errorf("%s: %v, must not be %v", tt.name, err, tt.not)
		}
	}
	// A chunk comes back byte for byte; a sealed chunk goes up as it is.
	var got []byte
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			ctype = r.Header.Get("Content-Type")
			got, _ = readAll(r)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(got)
	}))
	defer srv.Close()
	c := NewClient(srv.URL, nil)
	chunk := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
	if err := c.PutChunk(ctx, "cred", id, 3, chunk); err != nil || !bytes.Equal(got, chunk) || ctype != "application/octet-stream" {
		t.Fatalf("PutChunk: %v, %d bytes as %q", err, len(got), ctype)
	}
	if b, err := c.GetChunk(ctx, "cred", id, 3); err != nil || !bytes.Equal(b, chunk) {
		t.Fatalf("GetChunk: %v, %d bytes", err, len(b))
	}
	// Refused before any request.
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"no credential", c.CreateStoredFile(ctx, "", id, 1, []string{"bob"})},
		{"bad id", c.CreateStoredFile(ctx, "cred", "x", 1, []string{"bob"})},
		{"size 0", c.CreateStoredFile(ctx, "cred", id, 0, []string{"bob"})},
		{"no recipient", c.CreateStoredFile(ctx, "cred", id, 1, nil)},
		{"101 recipients", c.CreateStoredFile(ctx, "cred", id, 1, make([]string, MaxFileRecipients+1))},
		{"negative index", c.PutChunk(ctx, "cred", id, -1, chunk)},
		{"empty chunk", c.PutChunk(ctx, "cred", id, 0, nil)},
		{"chunk too long", c.PutChunk(ctx, "cred", id, 0, make([]byte, MaxStoredChunk+1))},
	} {
		if tt.err == nil || (!errors.Is(tt.err, ErrBadRequest) && !errors.Is(tt.err, ErrUnauthorized)) {
			t.Errorf("%s: %v, want a refusal", tt.name, tt.err)
		}
	}
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}
