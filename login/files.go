package login

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// The file store (docs/login.md, "File store"): a sender leaves a file's
// chunks, sealed end to end with the file's own key, for recipients that
// are offline. The server keeps ciphertext it cannot read, in the
// database, until the owner deletes the file, Config.FileFetchedGrace after
// every recipient took it (so that each of their devices can), or
// Config.FileStoreTTL after its creation.

// fileRoutes adds the authenticated file store endpoints.
func (s *Server) fileRoutes(mux *http.ServeMux) {
	mux.Handle("/api/v1/files", s.api(http.MethodPost, s.authed(s.handleCreateFile)))
	mux.Handle("/api/v1/files/{id}", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodGet:    s.authed(s.handleGetFile),
		http.MethodDelete: s.authed(s.handleDeleteFile),
	}))
	mux.Handle("/api/v1/files/{id}/chunks/{index}", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodGet: s.authed(s.handleGetChunk),
		http.MethodPut: s.authed(s.handlePutChunk),
	}))
}

// fileIDMessage is the 400 for a malformed file id.
var fileIDMessage = fmt.Sprintf("must be %d lowercase hex characters", loginapi.FileIDLen)

// pathFileID checks the {id} path value; on failure it answers 400.
func pathFileID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if loginapi.CheckFileID(id) != nil {
		writeError(w, http.StatusBadRequest, "file id in the path "+fileIDMessage)
		return "", false
	}
	return id, true
}

// pathChunkIndex checks the {index} path value (a decimal integer from 0,
// in its one canonical form); on failure it answers 400.
func pathChunkIndex(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("index")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		writeError(w, http.StatusBadRequest, "chunk index in the path must be a decimal integer from 0")
		return 0, false
	}
	return n, true
}

// fileInfo is f as the API shows it.
func (s *Server) fileInfo(f storedFile) loginapi.StoredFileInfo {
	chunks := loginapi.StoreChunks(f.size)
	return loginapi.StoredFileInfo{
		ID: f.id, Owner: f.owner, Size: f.size, Chunks: chunks, Have: f.have, Complete: f.have == chunks,
		Created: f.created, Expires: f.created + int64(s.cfg.FileStoreTTL/time.Second),
	}
}

// writeNoFile answers 404 for a file the caller may not see or does not
// own (as for a file that does not exist).
func writeNoFile(w http.ResponseWriter, id, whose string) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("%v: %s %s", loginapi.ErrUnknownFile, whose, id))
}

// handleCreateFile is POST /api/v1/files.
func (s *Server) handleCreateFile(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	var req loginapi.StoredFileRequest
	if !decode(w, r, &req) {
		return
	}
	if loginapi.CheckFileID(req.ID) != nil {
		writeError(w, http.StatusBadRequest, "id "+fileIDMessage)
		return
	}
	if req.Size < 1 {
		writeError(w, http.StatusBadRequest, "size must be at least 1")
		return
	}
	if req.Size > s.cfg.MaxStoredFile {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%v: a stored file is at most %d bytes, not %d",
			loginapi.ErrTooLarge, s.cfg.MaxStoredFile, req.Size))
		return
	}
	if len(req.Recipients) == 0 || len(req.Recipients) > loginapi.MaxFileRecipients {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("recipients must list 1 to %d users, not %d", loginapi.MaxFileRecipients, len(req.Recipients)))
		return
	}
	names := make([]string, 0, len(req.Recipients))
	for i, n := range req.Recipients {
		if msg := checkUserName(n); msg != "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("recipients[%d]: %s", i, msg))
			return
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	f, created, err := s.st.createFile(r.Context(), fileCreate{id: req.ID, owner: cred.User, size: req.Size, recipients: names,
		now: s.now(), quota: s.cfg.FileQuotaPerUser})
	var re *recipientError
	switch {
	case errors.As(err, &re):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%v: recipients[%d] %s", loginapi.ErrUnknownUser, slices.Index(req.Recipients, re.name), re.name))
		return
	case errors.Is(err, loginapi.ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: the credential names no account", loginapi.ErrUnauthorized))
		return
	case errors.Is(err, loginapi.ErrFileExists):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, loginapi.ErrQuota):
		s.log.Info("stored file refused: quota", "owner", cred.User, "size", req.Size)
		writeError(w, http.StatusInsufficientStorage, err.Error())
		return
	case err != nil:
		s.writeInternal(w, r, "stored file creation", fmt.Errorf("login: create stored file of %q: %w", cred.User, err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("stored file created", "owner", cred.User, "size", f.size, "chunks", loginapi.StoreChunks(f.size), "recipients", len(names))
	}
	writeJSON(w, status, s.fileInfo(f))
}

// handlePutChunk is PUT /api/v1/files/{id}/chunks/{index}: the owner
// uploads one sealed chunk.
func (s *Server) handlePutChunk(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	id, ok := pathFileID(w, r)
	if !ok {
		return
	}
	index, ok := pathChunkIndex(w, r)
	if !ok {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		writeError(w, http.StatusUnsupportedMediaType, "content type must be application/octet-stream")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, loginapi.MaxStoredChunk))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%v: a sealed chunk is at most %d bytes", loginapi.ErrTooLarge, loginapi.MaxStoredChunk))
		} else {
			writeError(w, http.StatusBadRequest, "could not read request body")
		}
		return
	}
	err = s.st.putChunk(r.Context(), cred.User, id, index, body)
	var ce *chunkError
	switch {
	case errors.Is(err, loginapi.ErrUnknownFile):
		writeNoFile(w, id, "you own no stored file")
		return
	case errors.As(err, &ce):
		writeError(w, http.StatusBadRequest, ce.msg)
		return
	case err != nil:
		s.writeInternal(w, r, "chunk upload", fmt.Errorf("login: put chunk of %q: %w", cred.User, err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// handleGetFile is GET /api/v1/files/{id}.
func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	id, ok := pathFileID(w, r)
	if !ok {
		return
	}
	f, err := s.st.storedFile(r.Context(), cred.User, id)
	if errors.Is(err, loginapi.ErrUnknownFile) {
		writeNoFile(w, id, "no stored file for you has id")
		return
	} else if err != nil {
		s.writeInternal(w, r, "stored file lookup", fmt.Errorf("login: stored file for %q: %w", cred.User, err))
		return
	}
	writeJSON(w, http.StatusOK, s.fileInfo(f))
}

// handleGetChunk is GET /api/v1/files/{id}/chunks/{index}: the sealed
// chunk's bytes, as uploaded.
func (s *Server) handleGetChunk(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	id, ok := pathFileID(w, r)
	if !ok {
		return
	}
	index, ok := pathChunkIndex(w, r)
	if !ok {
		return
	}
	data, err := s.st.chunk(r.Context(), cred.User, id, index)
	var ce *chunkError
	switch {
	case errors.Is(err, loginapi.ErrUnknownFile):
		writeNoFile(w, id, "no stored file for you has id")
		return
	case errors.As(err, &ce):
		writeError(w, http.StatusBadRequest, ce.msg)
		return
	case errors.Is(err, loginapi.ErrNoChunk):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%v: chunk %d of file %s has not been uploaded", loginapi.ErrNoChunk, index, id))
		return
	case err != nil:
		s.writeInternal(w, r, "chunk download", fmt.Errorf("login: chunk for %q: %w", cred.User, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// handleDeleteFile is DELETE /api/v1/files/{id}: the owner deletes the
// file; a recipient marks their claim taken (their other devices still
// fetch it; the janitor deletes the file FileFetchedGrace after the last
// claim was taken).
func (s *Server) handleDeleteFile(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	id, ok := pathFileID(w, r)
	if !ok {
		return
	}
	d, err := s.st.deleteFile(r.Context(), cred.User, id, s.now())
	if errors.Is(err, loginapi.ErrUnknownFile) {
		writeNoFile(w, id, "no stored file for you has id")
		return
	} else if err != nil {
		s.writeInternal(w, r, "stored file deletion", fmt.Errorf("login: delete stored file for %q: %w", cred.User, err))
		return
	}
	switch {
	case d.owner:
		s.log.Info("stored file deleted by its owner", "owner", cred.User, "size", d.size)
	case d.last:
		s.log.Info("stored file taken by its last recipient; kept for their other devices", "recipient", cred.User, "size", d.size,
			"for", s.cfg.FileFetchedGrace.String())
	case d.again:
		s.log.Debug("stored file taken again by another device of a recipient", "recipient", cred.User, "size", d.size)
	default:
		s.log.Debug("stored file taken by a recipient", "recipient", cred.User, "size", d.size)
	}
	writeJSON(w, http.StatusOK, loginapi.StoredFileDeleted{Deleted: d.deleted})
}
