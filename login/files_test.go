package login

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

func newFileID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sealedChunks returns random "sealed" chunks of a file of size bytes: the
// store sees only their lengths.
func sealedChunks(t testing.TB, size int64) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range loginapi.StoreChunks(size) {
		b := make([]byte, loginapi.SealedChunkSize(size, i))
		rand.Read(b)
		out = append(out, b)
	}
	return out
}

// upload creates file id of size bytes owned by d for recipients and puts
// all its chunks; it returns them.
func (d *dev) upload(id string, size int64, recipients ...string) [][]byte {
	t := d.e.t
	t.Helper()
	ctx := t.Context()
	if err := d.e.cl.CreateStoredFile(ctx, d.cred, id, size, recipients); err != nil {
		t.Fatalf("CreateStoredFile by %s: %v", d.user, err)
	}
	chunks := sealedChunks(t, size)
	for i, c := range chunks {
		if err := d.e.cl.PutChunk(ctx, d.cred, id, int64(i), c); err != nil {
			t.Fatalf("PutChunk %d by %s: %v", i, d.user, err)
		}
	}
	return chunks
}

// rows counts the rows of table whose column col is v.
func (e *env) rows(table, col string, v any) int {
	e.t.Helper()
	st := e.srv.st.(*sqlStore)
	var n int
	if err := st.db.QueryRow(st.q(`SELECT COUNT(*) FROM `+table+` WHERE `+col+` = ?`), v).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// fileRows counts what the database holds of file id: its row, its
// recipients and its chunks.
func (e *env) fileRows(id string) [3]int {
	e.t.Helper()
	return [3]int{e.rows("stored_files", "id", id), e.rows("stored_file_recipients", "file_id", id), e.rows("stored_chunks", "file_id", id)}
}

// rawCall sends body with content type ctype (none when "") and returns
// the status and the answer's bytes.
func rawCall(t testing.TB, h http.Handler, method, path, cred, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Parley "+cred)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// TestFileStoreRoundTrip: a file stored by its owner comes back byte for
// byte to a recipient; others get 404 as for a file that does not exist;
// the recipient's delete, the last claim, deletes it with its chunks; the
// logs name users and sizes, never the file's id.
func TestFileStoreRoundTrip(t *testing.T) { eachStore(t, testFileStoreRoundTrip) }

func testFileStoreRoundTrip(t *testing.T, db string) {
	logger, logs := captureLogs()
	e := newEnv(t, Config{DB: db, Logger: logger})
	ctx := t.Context()
	alice, bob, carol := e.login("alice"), e.login("bob"), e.login("carol")
	id := newFileID(t)
	size := int64(2*loginapi.StoreChunk + 1000)
	chunks := alice.upload(id, size, "bob")
	if got := len(chunks); got != 3 || len(chunks[0]) != loginapi.StoreChunk+16 || len(chunks[2]) != 1000+16 {
		t.Fatalf("chunks: %d, first %d bytes, last %d", got, len(chunks[0]), len(chunks[2]))
	}
	now := e.clock.Now().Unix()
	want := loginapi.StoredFileInfo{ID: id, Owner: "alice", Size: size, Chunks: 3, Have: 3, Complete: true,
		Created: now, Expires: now + int64(DefaultFileStoreTTL/time.Second)}
	for _, d := range []*dev{alice, bob} {
		if got, err := e.cl.StoredFile(ctx, d.cred, id); err != nil || got != want {
			t.Errorf("StoredFile by %s: got %+v %v, want %+v", d.user, got, err, want)
		}
		for i, c := range chunks {
			if got, err := e.cl.GetChunk(ctx, d.cred, id, int64(i)); err != nil || !bytes.Equal(got, c) {
				t.Errorf("GetChunk %d by %s: %d bytes, %v; want the %d uploaded", i, d.user, len(got), err, len(c))
			}
		}
	}
	// The wire form.
	code, body := rawCall(t, e.h, "GET", "/api/v1/files/"+id+"/chunks/2", bob.cred, "", nil)
	if code != 200 || !bytes.Equal(body, chunks[2]) {
		t.Errorf("GET chunk 2: %d, %d bytes", code, len(body))
	}

	// Anyone else: 404, as for no file at all; a recipient cannot upload.
	other := newFileID(t)
	for _, tt := range []struct {
		name string
		call func() error
		want error
	}{
		{"info by a stranger", func() error { _, err := e.cl.StoredFile(ctx, carol.cred, id); return err }, loginapi.ErrUnknownFile},
		{"chunk by a stranger", func() error { _, err := e.cl.GetChunk(ctx, carol.cred, id, 0); return err }, loginapi.ErrUnknownFile},
		{"delete by a stranger", func() error { return e.cl.DeleteStoredFile(ctx, carol.cred, id) }, loginapi.ErrUnknownFile},
		{"upload by a stranger", func() error { return e.cl.PutChunk(ctx, carol.cred, id, 0, chunks[0]) }, loginapi.ErrUnknownFile},
		{"upload by a recipient", func() error { return e.cl.PutChunk(ctx, bob.cred, id, 0, chunks[0]) }, loginapi.ErrUnknownFile},
		{"info of no file", func() error { _, err := e.cl.StoredFile(ctx, alice.cred, other); return err }, loginapi.ErrUnknownFile},
		{"chunk out of range", func() error { _, err := e.cl.GetChunk(ctx, bob.cred, id, 3); return err }, loginapi.ErrBadRequest},
	} {
		if err := tt.call(); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	code, strangerBody := rawCall(t, e.h, "GET", "/api/v1/files/"+id, carol.cred, "", nil)
	_, noneBody := rawCall(t, e.h, "GET", "/api/v1/files/"+other, carol.cred, "", nil)
	if code != 404 || !bytes.Equal(strangerBody, bytes.ReplaceAll(noneBody, []byte(other), []byte(id))) {
		t.Errorf("a stranger's 404 differs from no file's: %d %s / %s", code, strangerBody, noneBody)
	}

	// A file with a chunk missing: ErrNoChunk, not ErrUnknownFile.
	partial := newFileID(t)
	if err := e.cl.CreateStoredFile(ctx, alice.cred, partial, 10, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.GetChunk(ctx, bob.cred, partial, 0); !errors.Is(err, loginapi.ErrNoChunk) || errors.Is(err, loginapi.ErrUnknownFile) {
		t.Errorf("a chunk not uploaded: %v, want ErrNoChunk", err)
	}
	if got, err := e.cl.StoredFile(ctx, bob.cred, partial); err != nil || got.Have != 0 || got.Complete || got.Chunks != 1 {
		t.Errorf("a file without chunks: %+v %v", got, err)
	}

	// Bob, the only recipient, takes it: his claim is marked taken, and
	// the file stays (FileFetchedGrace) for his other devices.
	code, body = rawCall(t, e.h, "DELETE", "/api/v1/files/"+id, bob.cred, "", nil)
	if code != 200 || strings.TrimSpace(string(body)) != `{"deleted":false}` {
		t.Errorf("delete by the last recipient: %d %s", code, body)
	}
	if got := e.fileRows(id); got != [3]int{1, 1, 3} {
		t.Errorf("rows left (file, recipients, chunks): %v, want all", got)
	}
	if err := e.cl.DeleteStoredFile(ctx, bob.cred, id); err != nil {
		t.Errorf("a second delete (another device of bob's): %v, want none", err)
	}
	// The janitor deletes it a day after.
	e.clock.Advance(DefaultFileFetchedGrace)
	e.srv.prune(ctx)
	if got := e.fileRows(id); got != [3]int{} {
		t.Errorf("rows left (file, recipients, chunks) after the grace: %v, want none", got)
	}
	alice.relogin()
	bob.relogin()
	if _, err := e.cl.StoredFile(ctx, alice.cred, id); !errors.Is(err, loginapi.ErrUnknownFile) {
		t.Errorf("the owner after the grace: %v, want ErrUnknownFile", err)
	}
	if err := e.cl.DeleteStoredFile(ctx, bob.cred, id); !errors.Is(err, loginapi.ErrUnknownFile) {
		t.Errorf("a delete after the grace: %v, want ErrUnknownFile", err)
	}

	out := logs.String()
	for _, msg := range []string{`"msg":"stored file created"`, `"owner":"alice","size":132072,"chunks":3,"recipients":1`,
		`"msg":"stored file taken by its last recipient; kept for their other devices"`, `"recipient":"bob","size":132072`,
		`"msg":"expired stored files deleted"`} {
		if !strings.Contains(out, msg) {
			t.Errorf("log lacks %s", msg)
		}
	}
	for _, secret := range []string{id, partial, hex.EncodeToString(chunks[0][:8])} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %s", secret)
		}
	}
}

// TestFileStoreCreate: the checks of POST /api/v1/files, in order, with the
// store left as it was by every refusal.
func TestFileStoreCreate(t *testing.T) { eachStore(t, testFileStoreCreate) }

func testFileStoreCreate(t *testing.T, db string) {
	const maxFile, quota = 200_000, 300_000
	e := newEnv(t, Config{DB: db, MaxStoredFile: maxFile, FileQuotaPerUser: quota})
	alice, bob := e.login("alice"), e.login("bob")
	e.login("carol")
	first, second, third := newFileID(t), newFileID(t), newFileID(t)
	many := make([]string, loginapi.MaxFileRecipients+1)
	for i := range many {
		many[i] = "bob"
	}
	body := func(id string, size int64, recipients ...string) any {
		return loginapi.StoredFileRequest{ID: id, Size: size, Recipients: recipients}
	}
	tests := []struct {
		name   string
		d      *dev
		body   any
		status int
		msg    string // the error's start, or the file's owner on success
		stored bool   // the id has a file afterwards
	}{
		{"bad id", alice, body("ABC", 10, "bob"), 400, "id must be 32 lowercase hex characters", false},
		{"upper-case id", alice, body(strings.ToUpper(first), 10, "bob"), 400, "id must be", false},
		{"size 0", alice, body(first, 0, "bob"), 400, "size must be at least 1", false},
		{"over the per-file cap", alice, body(first, maxFile+1, "bob"), 413, "too large: a stored file is at most 200000 bytes, not 200001", false},
		{"no recipients", alice, body(first, 10), 400, "recipients must list 1 to 100 users, not 0", false},
		{"too many recipients", alice, body(first, 10, many...), 400, "recipients must list 1 to 100 users, not 101", false},
		{"bad name", alice, body(first, 10, "bob", "Carol"), 400, "recipients[1]: invalid user name", false},
		{"unknown recipient", alice, body(first, 10, "bob", "carol", "zed"), 404, "unknown user: recipients[2] zed", false},
		{"not JSON", alice, `{"id":`, 400, "request body is not valid JSON", false},
		{"created", alice, body(first, maxFile, "bob", "carol", "bob"), 201, "alice", true},
		{"repeated", alice, body(first, maxFile, "bob"), 200, "alice", true},
		{"repeated with another size", alice, body(first, maxFile-1, "bob"), 409, "file id already in use: your stored file " + first + " has 200000 bytes, not 199999", true},
		{"another owner's id", bob, body(first, maxFile, "alice"), 409, "file id already in use: another user's stored file has id " + first, true},
		{"over the quota", alice, body(second, quota-maxFile+1, "bob"), 507, "quota exceeded: your stored files hold 200000 bytes; 100001 more would pass your quota of 300000", false},
		{"up to the quota", alice, body(second, quota-maxFile, "bob"), 201, "alice", true},
		{"another user's quota is their own", bob, body(third, maxFile, "alice"), 201, "bob", true},
	}
	for _, tt := range tests {
		code, m, _ := authCall(t, e.h, "POST", "/api/v1/files", "", "Parley "+tt.d.cred, tt.body)
		got, _ := m["error"].(string)
		if code < 300 {
			got, _ = m["owner"].(string)
		}
		if code != tt.status || !strings.HasPrefix(got, tt.msg) {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, code, got, tt.status, tt.msg)
		}
		if id, ok := tt.body.(loginapi.StoredFileRequest); ok && loginapi.CheckFileID(id.ID) == nil {
			if n := e.rows("stored_files", "id", id.ID); (n == 1) != tt.stored {
				t.Errorf("%s: %d files with the id afterwards, want stored %v", tt.name, n, tt.stored)
			}
		}
	}
	// Listed twice, stored once.
	if n := e.rows("stored_file_recipients", "file_id", first); n != 2 {
		t.Errorf("recipients of the first file: %d rows, want 2 (bob once, carol)", n)
	}
	// The Go client's sentinels.
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		err  error
		want []error
	}{
		{"over the cap", e.cl.CreateStoredFile(ctx, alice.cred, newFileID(t), maxFile+1, []string{"bob"}), []error{loginapi.ErrTooLarge, loginapi.ErrBadRequest}},
		{"over the quota", e.cl.CreateStoredFile(ctx, alice.cred, newFileID(t), 1, []string{"bob"}), []error{loginapi.ErrQuota}},
		{"taken id", e.cl.CreateStoredFile(ctx, bob.cred, first, maxFile, []string{"alice"}), []error{loginapi.ErrFileExists}},
		{"unknown recipient", e.cl.CreateStoredFile(ctx, bob.cred, newFileID(t), 1, []string{"zed"}), []error{loginapi.ErrUnknownUser}},
		{"bad id", e.cl.CreateStoredFile(ctx, bob.cred, "x", 1, []string{"alice"}), []error{loginapi.ErrBadRequest}},
		{"size 0", e.cl.CreateStoredFile(ctx, bob.cred, newFileID(t), 0, []string{"alice"}), []error{loginapi.ErrBadRequest}},
		{"repeated", e.cl.CreateStoredFile(ctx, alice.cred, first, maxFile, []string{"bob"}), nil},
	} {
		for _, w := range tt.want {
			if !errors.Is(tt.err, w) {
				t.Errorf("%s: got %v, want %v", tt.name, tt.err, w)
			}
		}
		if tt.want == nil && tt.err != nil {
			t.Errorf("%s: %v", tt.name, tt.err)
		}
	}
	// Deleting frees the quota.
	if err := e.cl.DeleteStoredFile(ctx, alice.cred, first); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.CreateStoredFile(ctx, alice.cred, newFileID(t), maxFile, []string{"bob"}); err != nil {
		t.Errorf("after deleting a file: %v", err)
	}
}

// TestFileStoreChunks: PUT /api/v1/files/{id}/chunks/{index} takes exactly
// the sealed length of each chunk, in range, from the owner, and again (a
// retry) without harm; GET returns the last one stored.
func TestFileStoreChunks(t *testing.T) { eachStore(t, testFileStoreChunks) }

func testFileStoreChunks(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	alice, bob := e.login("alice"), e.login("bob")
	id := newFileID(t)
	size := int64(2*loginapi.StoreChunk + 1000)
	if err := e.cl.CreateStoredFile(t.Context(), alice.cred, id, size, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	full := bytes.Repeat([]byte{1}, loginapi.StoreChunk+16)
	last := bytes.Repeat([]byte{2}, 1000+16)
	path := func(i string) string { return "/api/v1/files/" + id + "/chunks/" + i }
	const bin = "application/octet-stream"
	tests := []struct {
		name   string
		d      *dev
		path   string
		ctype  string
		body   []byte
		status int
		msg    string
	}{
		{"index out of range", alice, path("3"), bin, last, 400, "chunk index 3 out of range: the file has 3 chunks (0 to 2)"},
		{"huge index", alice, path("9223372036854775807"), bin, last, 400, "chunk index 9223372036854775807 out of range"},
		{"negative index", alice, path("-1"), bin, last, 400, "chunk index in the path must be a decimal integer from 0"},
		{"index with a leading zero", alice, path("01"), bin, full, 400, "chunk index in the path must be"},
		{"index not a number", alice, path("x"), bin, full, 400, "chunk index in the path must be"},
		{"bad id", alice, "/api/v1/files/" + id[:31] + "/chunks/0", bin, full, 400, "file id in the path must be 32 lowercase hex characters"},
		{"without the tag", alice, path("0"), bin, full[:loginapi.StoreChunk], 400, "chunk 0 is 65536 bytes, want 65552"},
		{"last, a byte short", alice, path("2"), bin, last[1:], 400, "chunk 2 is 1015 bytes, want 1016"},
		{"last at full length", alice, path("2"), bin, full, 400, "chunk 2 is 65552 bytes, want 1016"},
		{"empty", alice, path("1"), bin, nil, 400, "chunk 1 is 0 bytes, want 65552"},
		{"over the body cap", alice, path("0"), bin, append(full, 0), 413, "too large: a sealed chunk is at most 65552 bytes"},
		{"JSON", alice, path("0"), "application/json", full, 415, "content type must be application/octet-stream"},
		{"no content type", alice, path("0"), "", full, 415, "content type must be"},
		{"by the recipient", bob, path("0"), bin, full, 404, "no such stored file: you own no stored file " + id},
		{"no such file", alice, "/api/v1/files/" + newFileID(t) + "/chunks/0", bin, full, 404, "no such stored file"},
		{"first", alice, path("0"), bin, full, 204, ""},
		{"first again", alice, path("0"), bin, full, 204, ""},
		{"last", alice, path("2"), bin, last, 204, ""},
		{"last replaced", alice, path("2"), "application/octet-stream; x=y", bytes.Repeat([]byte{3}, 1016), 204, ""},
	}
	for _, tt := range tests {
		code, body := rawCall(t, e.h, "PUT", tt.path, tt.d.cred, tt.ctype, tt.body)
		got := ""
		if code != 204 {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("%s: %d answer not JSON: %q", tt.name, code, body)
				continue
			}
			got, _ = m["error"].(string)
		} else if len(body) != 0 {
			t.Errorf("%s: 204 with a body %q", tt.name, body)
		}
		if code != tt.status || !strings.HasPrefix(got, tt.msg) {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, code, got, tt.status, tt.msg)
		}
	}
	if n := e.rows("stored_chunks", "file_id", id); n != 2 {
		t.Errorf("chunks stored: %d, want 2 (0 and 2, each once)", n)
	}
	ctx := t.Context()
	if got, err := e.cl.GetChunk(ctx, bob.cred, id, 2); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{3}, 1016)) {
		t.Errorf("chunk 2 after a replacement: %v %v", got[:min(4, len(got))], err)
	}
	if got, err := e.cl.StoredFile(ctx, bob.cred, id); err != nil || got.Have != 2 || got.Complete {
		t.Errorf("info: %+v %v, want 2 of 3 chunks", got, err)
	}
	// The Go client refuses what cannot be a sealed chunk before sending.
	for _, tt := range []struct {
		name  string
		index int64
		b     []byte
	}{{"negative index", -1, full}, {"only a tag", 0, full[:16]}, {"too long", 0, append(full, 0)}} {
		if err := e.cl.PutChunk(ctx, alice.cred, id, tt.index, tt.b); !errors.Is(err, loginapi.ErrBadRequest) {
			t.Errorf("client, %s: %v, want ErrBadRequest", tt.name, err)
		}
	}
	if err := e.cl.PutChunk(ctx, alice.cred, id, 1, full[1:]); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("client, wrong length: %v, want ErrBadRequest", err)
	}
}

// TestFileStoreDelete: a recipient's delete removes only their claim; the
// last one's deletes the file and its chunks; the owner's deletes it
// whoever still has a claim.
func TestFileStoreDelete(t *testing.T) { eachStore(t, testFileStoreDelete) }

func testFileStoreDelete(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	alice, bob, carol, dave := e.login("alice"), e.login("bob"), e.login("carol"), e.login("dave")
	bob2 := e.login("bob") // another device of bob's
	shared, owned := newFileID(t), newFileID(t)
	alice.upload(shared, 3*loginapi.StoreChunk, "bob", "carol")
	alice.upload(owned, 5, "bob", "carol")
	info := func(d *dev, id string) error { _, err := e.cl.StoredFile(ctx, d.cred, id); return err }
	steps := []struct {
		name    string
		by      *dev
		id      string
		deleted string // the answer
		rows    [3]int // file, recipients, chunks of id afterwards
		see     map[*dev]error
	}{
		// A recipient's delete marks their claim taken: the file stays for
		// their other devices (bob2), and for the other recipients.
		{"bob takes the shared file", bob, shared, `{"deleted":false}`, [3]int{1, 2, 3},
			map[*dev]error{alice: nil, bob: nil, bob2: nil, carol: nil}},
		{"bob's other device", bob2, shared, `{"deleted":false}`, [3]int{1, 2, 3},
			map[*dev]error{alice: nil, bob: nil, bob2: nil, carol: nil}},
		{"carol, the last", carol, shared, `{"deleted":false}`, [3]int{1, 2, 3},
			map[*dev]error{alice: nil, bob: nil, bob2: nil, carol: nil}},
		{"a stranger", dave, shared, `{"error":"no such stored file: no stored file for you has id ` + shared + `"}`, [3]int{1, 2, 3},
			map[*dev]error{alice: nil, dave: loginapi.ErrUnknownFile}},
		{"the owner", alice, owned, `{"deleted":true}`, [3]int{},
			map[*dev]error{alice: loginapi.ErrUnknownFile, bob: loginapi.ErrUnknownFile, carol: loginapi.ErrUnknownFile}},
	}
	for _, s := range steps {
		_, body := rawCall(t, e.h, "DELETE", "/api/v1/files/"+s.id, s.by.cred, "", nil)
		if got := strings.TrimSpace(string(body)); got != s.deleted {
			t.Errorf("%s: got %s, want %s", s.name, got, s.deleted)
		}
		if got := e.fileRows(s.id); got != s.rows {
			t.Errorf("%s: rows (file, recipients, chunks) %v, want %v", s.name, got, s.rows)
		}
		for d, want := range s.see {
			if err := info(d, s.id); !errors.Is(err, want) || (want == nil && err != nil) {
				t.Errorf("%s: %s sees %v, want %v", s.name, d.user, err, want)
			}
		}
	}
	// Every device of bob's still fetches the shared file, until the
	// janitor deletes it FileFetchedGrace after the last claim was taken.
	for _, d := range []*dev{bob, bob2} {
		if _, err := e.cl.GetChunk(ctx, d.cred, shared, 2); err != nil {
			t.Errorf("a device of bob's fetching the taken file: %v", err)
		}
	}
	e.clock.Advance(DefaultFileFetchedGrace - time.Second)
	e.srv.prune(ctx)
	if got := e.fileRows(shared); got != [3]int{1, 2, 3} {
		t.Errorf("a second before the grace ends: rows %v, want all", got)
	}
	e.clock.Advance(time.Second)
	e.srv.prune(ctx)
	if got := e.fileRows(shared); got != [3]int{} {
		t.Errorf("once the grace ends: rows %v, want none", got)
	}
}

// TestFileStoreTakenByOne: one recipient's claim taken keeps the file for
// the recipients who have not taken it, past the grace, until they do (or
// FileStoreTTL).
func TestFileStoreTakenByOne(t *testing.T) { eachStore(t, testFileStoreTakenByOne) }

func testFileStoreTakenByOne(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, FileFetchedGrace: time.Hour})
	ctx := t.Context()
	alice, bob, carol := e.login("alice"), e.login("bob"), e.login("carol")
	id := newFileID(t)
	alice.upload(id, 10, "bob", "carol")
	if err := e.cl.DeleteStoredFile(ctx, bob.cred, id); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	e.srv.prune(ctx)
	if got := e.fileRows(id); got != [3]int{1, 2, 1} {
		t.Fatalf("carol has not taken it: rows %v, want all", got)
	}
	carol.relogin()
	if err := e.cl.DeleteStoredFile(ctx, carol.cred, id); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.srv.prune(ctx)
	if got := e.fileRows(id); got != [3]int{} {
		t.Errorf("an hour after carol took it: rows %v, want none", got)
	}
}

// TestFileStoreExpiry: the janitor deletes a stored file FileStoreTTL after
// its creation, delivered or not, with its chunks, and frees the quota.
func TestFileStoreExpiry(t *testing.T) { eachStore(t, testFileStoreExpiry) }

func testFileStoreExpiry(t *testing.T, db string) {
	const ttl = 48 * time.Hour
	logger, logs := captureLogs()
	e := newEnv(t, Config{DB: db, FileStoreTTL: ttl, FileQuotaPerUser: 100_000, Logger: logger})
	ctx := t.Context()
	alice, bob := e.login("alice"), e.login("bob")
	early, late := newFileID(t), newFileID(t)
	alice.upload(early, 70_000, "bob")
	e.clock.Advance(time.Hour)
	alice.relogin()
	bob.relogin()
	bob.upload(late, 10, "alice")
	if err := e.cl.CreateStoredFile(ctx, alice.cred, newFileID(t), 40_000, []string{"bob"}); !errors.Is(err, loginapi.ErrQuota) {
		t.Fatalf("over the quota: %v", err)
	}
	for _, tt := range []struct {
		advance     time.Duration
		early, late [3]int
	}{
		{ttl - time.Hour - time.Second, [3]int{1, 1, 2}, [3]int{1, 1, 1}},
		{time.Second, [3]int{}, [3]int{1, 1, 1}},
		{time.Hour - time.Second, [3]int{}, [3]int{1, 1, 1}},
		{time.Second, [3]int{}, [3]int{}},
	} {
		e.clock.Advance(tt.advance)
		e.srv.prune(ctx)
		at := e.clock.Now().Sub(time.Unix(1_800_000_000, 0))
		if got := e.fileRows(early); got != tt.early {
			t.Errorf("at +%v: the first file's rows %v, want %v", at, got, tt.early)
		}
		if got := e.fileRows(late); got != tt.late {
			t.Errorf("at +%v: the second file's rows %v, want %v", at, got, tt.late)
		}
	}
	alice.relogin()
	bob.relogin()
	if _, err := e.cl.GetChunk(ctx, bob.cred, early, 0); !errors.Is(err, loginapi.ErrUnknownFile) {
		t.Errorf("an expired file's chunk: %v, want ErrUnknownFile", err)
	}
	if err := e.cl.CreateStoredFile(ctx, alice.cred, newFileID(t), 100_000, []string{"bob"}); err != nil {
		t.Errorf("after expiry, the quota is free again: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, `"msg":"expired stored files deleted"`) || !strings.Contains(out, `"count":1,"bytes":70000`) {
		t.Errorf("no expiry in the log")
	}
}

// TestFileStoreConfig: zero means the default, negative is refused.
func TestFileStoreConfig(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxStoredFile != 100<<20 || cfg.FileQuotaPerUser != 1<<30 || cfg.FileStoreTTL != 7*24*time.Hour || cfg.FileFetchedGrace != 24*time.Hour {
		t.Errorf("defaults: %d %d %v %v", cfg.MaxStoredFile, cfg.FileQuotaPerUser, cfg.FileStoreTTL, cfg.FileFetchedGrace)
	}
	for _, c := range []Config{{MaxStoredFile: -1}, {FileQuotaPerUser: -1}, {FileStoreTTL: -1}, {FileFetchedGrace: -1}} {
		if _, err := c.withDefaults(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v, want ErrBadConfig", c, err)
		}
	}
}

// dropVersion5 takes out what schema versions 5 and 6 added (tests of the
// migrations from older versions).
var dropVersion5 = []string{
	`DROP TABLE stored_chunks`,
	`DROP TABLE stored_file_recipients`,
	`DROP TABLE stored_files`,
}

// TestMigrationFromV4: a version-4 database gets the file store's tables
// and keeps its accounts.
func TestMigrationFromV4(t *testing.T) { eachStore(t, testMigrationFromV4) }

func testMigrationFromV4(t *testing.T, db string) {
	dir := t.TempDir()
	e := newEnv(t, Config{DB: db, DataDir: dir})
	e.login("alice")
	e.stop()
	driver, dsn := "sqlite", filepath.Join(dir, "login.db")
	if db != "" {
		driver, dsn = "pgx", db
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Back to version 4: drop what version 5 added.
	for _, q := range append(slices.Clone(dropVersion5), `UPDATE schema_version SET version = 4`) {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.start()
	var v int
	if err := raw.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations())-1 || v != 6 {
		t.Errorf("schema version after the migration: %d %v, want 6", v, err)
	}
	raw.Close()
	alice, bob := e.login("alice"), e.login("bob")
	id := newFileID(t)
	chunks := alice.upload(id, 10, "bob")
	if got, err := e.cl.GetChunk(t.Context(), bob.cred, id, 0); err != nil || !bytes.Equal(got, chunks[0]) {
		t.Errorf("the file store after the migration: %v", err)
	}
}

// TestPostgresFileStoreShared: two login servers on one PostgreSQL
// database share the store: a file uploaded through one is fetched
// through the other, and creations racing on both keep the quota.
func TestPostgresFileStoreShared(t *testing.T) {
	dsn := newPostgresDB(t)
	dir := t.TempDir()
	clock := newClock()
	const size = 1000
	cfg := Config{DB: dsn, DataDir: dir, Now: clock.Now, FileQuotaPerUser: 3 * size}
	a, b := newEnv(t, cfg), newEnv(t, cfg)
	alice, bob := a.login("alice"), b.login("bob")
	id := newFileID(t)
	chunks := alice.upload(id, 3*size, "bob")
	ctx := t.Context()
	for i, c := range chunks {
		if got, err := b.cl.GetChunk(ctx, bob.cred, id, int64(i)); err != nil || !bytes.Equal(got, c) {
			t.Errorf("chunk %d through the other server: %v", i, err)
		}
	}
	if err := b.cl.DeleteStoredFile(ctx, bob.cred, id); err != nil {
		t.Fatal(err)
	}
	// Taken through one server: still there, through the other, for bob's
	// other devices; the owner deletes it, which frees the quota.
	if _, err := a.cl.GetChunk(ctx, bob.cred, id, 0); err != nil {
		t.Errorf("after the recipient's delete on the other server: %v", err)
	}
	if err := a.cl.DeleteStoredFile(ctx, alice.cred, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cl.StoredFile(ctx, alice.cred, id); !errors.Is(err, loginapi.ErrUnknownFile) {
		t.Errorf("after the owner's delete on the other server: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			errs <- []*env{a, b}[i%2].cl.CreateStoredFile(ctx, alice.cred, newFileID(t), size, []string{"bob"})
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, loginapi.ErrQuota):
			t.Errorf("create: %v", err)
		}
	}
	if ok != 3 {
		t.Errorf("%d of 12 racing files stored, want 3 (the quota)", ok)
	}
	if n := a.rows("stored_files", "owner", "alice"); n != 3 {
		t.Errorf("alice's stored files: %d, want 3", n)
	}
}
