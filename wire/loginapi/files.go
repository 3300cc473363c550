package loginapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// The login server's file store (POST /api/v1/files and below): a sender
// leaves a file's chunks, each already sealed end to end with the file's own
// key, for recipients that are offline; the server keeps ciphertext it
// cannot read until the owner deletes the file, a while after every
// recipient has taken it (Config.FileFetchedGrace: each of their devices can
// fetch it meanwhile), or it expires (Config.FileStoreTTL after creation).
const (
	// StoreChunk is the plaintext size of every chunk of a stored file but
	// the last (client/im's FileChunk).
	StoreChunk = 64 << 10
	// StoreChunkOverhead is what sealing adds to a chunk (the AES-GCM tag).
	StoreChunkOverhead = 16
	// MaxStoredChunk is the largest sealed chunk, and the body cap of PUT
	// /api/v1/files/{id}/chunks/{index}.
	MaxStoredChunk = StoreChunk + StoreChunkOverhead
	// MaxFileRecipients caps the recipients of one stored file.
	MaxFileRecipients = 100
	// FileIDLen is the length of a stored file's id: 16 bytes in lowercase
	// hex (client/im's file offer id).
	FileIDLen = 32
)

// StoreChunks returns the number of chunks of a stored file of size bytes:
// ceil(size / StoreChunk).
func StoreChunks(size int64) int64 {
	if size <= 0 {
		return 0
	}
	return (size-1)/StoreChunk + 1
}

// SealedChunkSize returns the length of sealed chunk index of a file of size
// bytes: StoreChunk+StoreChunkOverhead for every chunk but the last, the
// rest of the file plus StoreChunkOverhead for the last; -1 when index is
// out of range.
func SealedChunkSize(size, index int64) int64 {
	n := StoreChunks(size)
	if index < 0 || index >= n {
		return -1
	}
	if index == n-1 {
		return size - index*StoreChunk + StoreChunkOverhead
	}
	return StoreChunk + StoreChunkOverhead
}

// CheckFileID reports whether id can name a stored file: FileIDLen
// lowercase hex characters. The error wraps ErrBadRequest.
func CheckFileID(id string) error {
	ok := len(id) == FileIDLen
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
	}
	if !ok {
		return fmt.Errorf("file id must be %d lowercase hex characters: %w", FileIDLen, ErrBadRequest)
	}
	return nil
}

// StoredFileRequest creates a stored file (POST /api/v1/files).
type StoredFileRequest struct {
	// ID is the file's id (see [CheckFileID]).
	ID string `json:"id"`
	// Size is the file's plaintext size, 1 to Config.MaxStoredFile.
	Size int64 `json:"size"`
	// Recipients are the users who may fetch it besides the owner: 1 to
	// MaxFileRecipients existing user names (a name listed twice counts
	// once).
	Recipients []string `json:"recipients"`
}

// StoredFileInfo describes a stored file (POST /api/v1/files, GET
// /api/v1/files/{id}).
type StoredFileInfo struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// Size is the plaintext size; Chunks is StoreChunks(Size).
	Size   int64 `json:"size"`
	Chunks int64 `json:"chunks"`
	// Have counts the chunks stored; Complete is Have == Chunks.
	Have     int64 `json:"have"`
	Complete bool  `json:"complete"`
	// Created and Expires (when the janitor deletes it) are Unix seconds.
	Created int64 `json:"created"`
	Expires int64 `json:"expires"`
}

// StoredFileDeleted is the answer to DELETE /api/v1/files/{id}.
type StoredFileDeleted struct {
	// Deleted: the file itself is gone (the owner deleted it). False for a
	// recipient: their claim is marked taken, and the file stays for their
	// other devices (and other recipients) until the janitor deletes it.
	Deleted bool `json:"deleted"`
}

// fileKinds maps the statuses of the file store endpoints to sentinels
// (401, 429 and 507 as for every call).
func fileKinds() map[int]error {
	return map[int]error{
		http.StatusNotFound:              ErrUnknownFile,
		http.StatusConflict:              ErrFileExists,
		http.StatusRequestEntityTooLarge: ErrTooLarge,
	}
}

func filePath(id string) string { return "/api/v1/files/" + id }

func chunkPath(id string, index int64) string {
	return filePath(id) + "/chunks/" + strconv.FormatInt(index, 10)
}

// CreateStoredFile creates the stored file id of size bytes, owned by the
// caller, for recipients. Repeating it with the same size is a no-op.
// Errors: ErrBadRequest (a bad id, size or name, checked before any
// request where possible), ErrUnknownUser (a recipient has no account; the
// message names it), ErrFileExists (another user's file has the id, or the
// caller's has another size), ErrTooLarge (size above the server's
// Config.MaxStoredFile), ErrQuota (the caller's stored files would pass
// Config.FileQuotaPerUser), ErrUnauthorized, ErrUnreachable, ErrServer.
func (c *Client) CreateStoredFile(ctx context.Context, cred, id string, size int64, recipients []string) error {
	if err := checkCred("create stored file", cred); err != nil {
		return err
	}
	if err := CheckFileID(id); err != nil {
		return fmt.Errorf("login: create stored file: %w", err)
	}
	if size < 1 {
		return fmt.Errorf("login: create stored file: size %d, want at least 1: %w", size, ErrBadRequest)
	}
	if len(recipients) == 0 || len(recipients) > MaxFileRecipients {
		return fmt.Errorf("login: create stored file: %d recipients, want 1 to %d: %w", len(recipients), MaxFileRecipients, ErrBadRequest)
	}
	kinds := fileKinds()
	kinds[http.StatusNotFound] = ErrUnknownUser
	var out StoredFileInfo
	return c.doAuth(ctx, cred, http.MethodPost, "/api/v1/files", StoredFileRequest{ID: id, Size: size, Recipients: recipients}, &out, kinds)
}

// PutChunk uploads sealed chunk index of the caller's stored file id; it
// must be exactly [SealedChunkSize] bytes. Uploading a chunk again replaces
// it. Errors: ErrBadRequest (index out of range, a wrong length),
// ErrUnknownFile (the caller owns no such file), ErrTooLarge,
// ErrUnauthorized, ErrUnreachable, ErrServer.
func (c *Client) PutChunk(ctx context.Context, cred, id string, index int64, sealed []byte) error {
	if err := checkCred("put chunk", cred); err != nil {
		return err
	}
	if err := CheckFileID(id); err != nil {
		return fmt.Errorf("login: put chunk: %w", err)
	}
	if index < 0 || len(sealed) <= StoreChunkOverhead || len(sealed) > MaxStoredChunk {
		return fmt.Errorf("login: put chunk: index %d, %d bytes (a sealed chunk is %d to %d): %w",
			index, len(sealed), StoreChunkOverhead+1, MaxStoredChunk, ErrBadRequest)
	}
	_, err := c.send(ctx, cred, nil, http.MethodPut, chunkPath(id, index), "application/octet-stream", sealed, fileKinds())
	return err
}

// StoredFile describes stored file id to its owner or a recipient. Errors:
// ErrUnknownFile (no such file, or the caller is neither its owner nor a
// recipient with a claim), ErrBadRequest, ErrUnauthorized, ErrUnreachable,
// ErrServer.
func (c *Client) StoredFile(ctx context.Context, cred, id string) (StoredFileInfo, error) {
	if err := checkCred("stored file", cred); err != nil {
		return StoredFileInfo{}, err
	}
	if err := CheckFileID(id); err != nil {
		return StoredFileInfo{}, fmt.Errorf("login: stored file: %w", err)
	}
	var out StoredFileInfo
	if err := c.doAuth(ctx, cred, http.MethodGet, filePath(id), nil, &out, fileKinds()); err != nil {
		return StoredFileInfo{}, err
	}
	if out.ID != id || out.Size < 1 || out.Chunks != StoreChunks(out.Size) || out.Have < 0 || out.Have > out.Chunks ||
		out.Complete != (out.Have == out.Chunks) {
		return StoredFileInfo{}, c.badResponse(fmt.Sprintf("stored file answer is inconsistent (id %q, size %d, chunks %d, have %d)",
			Sanitize(out.ID), out.Size, out.Chunks, out.Have))
	}
	return out, nil
}

// GetChunk fetches sealed chunk index of stored file id, for its owner or
// a recipient. Errors: ErrNoChunk (not uploaded yet), ErrUnknownFile,
// ErrBadRequest (index out of range), ErrUnauthorized, ErrUnreachable,
// ErrServer (an answer longer than MaxStoredChunk).
func (c *Client) GetChunk(ctx context.Context, cred, id string, index int64) ([]byte, error) {
	if err := checkCred("get chunk", cred); err != nil {
		return nil, err
	}
	if err := CheckFileID(id); err != nil {
		return nil, fmt.Errorf("login: get chunk: %w", err)
	}
	if index < 0 {
		return nil, fmt.Errorf("login: get chunk: index %d: %w", index, ErrBadRequest)
	}
	hdr := http.Header{"Accept": {"application/octet-stream, application/json"}}
	b, err := c.send(ctx, cred, hdr, http.MethodGet, chunkPath(id, index), "", nil, fileKinds())
	if err != nil {
		return nil, err
	}
	if len(b) <= StoreChunkOverhead || len(b) > MaxStoredChunk {
		return nil, c.badResponse(fmt.Sprintf("chunk %d is %d bytes, a sealed chunk is %d to %d", index, len(b), StoreChunkOverhead+1, MaxStoredChunk))
	}
	return b, nil
}

// DeleteStoredFile deletes stored file id when the caller owns it; for a
// recipient it marks the caller's claim taken (their other devices can
// still fetch the file; the server deletes it Config.FileFetchedGrace after
// every recipient took it; a second delete is a no-op). Errors:
// ErrUnknownFile (the file is gone, or was never the caller's), ErrBadRequest,
// ErrUnauthorized, ErrUnreachable, ErrServer.
func (c *Client) DeleteStoredFile(ctx context.Context, cred, id string) error {
	if err := checkCred("delete stored file", cred); err != nil {
		return err
	}
	if err := CheckFileID(id); err != nil {
		return fmt.Errorf("login: delete stored file: %w", err)
	}
	var out StoredFileDeleted
	return c.doAuth(ctx, cred, http.MethodDelete, filePath(id), nil, &out, fileKinds())
}
