package login

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

// userRoutes adds the authenticated user endpoints: devices, mailbox,
// contacts, status and search.
func (s *Server) userRoutes(mux *http.ServeMux) {
	mux.Handle("/api/v1/devices/self", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodPut:    s.authed(s.handlePutDevice),
		http.MethodDelete: s.authed(s.handleDeleteDevice),
	}))
	mux.Handle("/api/v1/devices", s.api(http.MethodGet, s.authed(s.handleMyDevices)))
	mux.Handle("/api/v1/devices/{key}", s.api(http.MethodDelete, s.authed(s.handleRemoveDevice)))
	mux.Handle("/api/v1/users/{name}/devices", s.api(http.MethodGet, s.authed(s.handleDevices)))
	mux.Handle("/api/v1/users", s.api(http.MethodGet, s.authed(s.handleSearch)))
	mux.Handle("/api/v1/mailbox", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodGet:  s.authed(s.handleGetMailbox),
		http.MethodPost: s.authed(s.handlePostMailbox),
	}))
	mux.Handle("/api/v1/mailbox/ack", s.api(http.MethodPost, s.authed(s.handleAck)))
	mux.Handle("/api/v1/contacts", s.api(http.MethodGet, s.authed(s.handleContacts)))
	mux.Handle("/api/v1/contacts/{name}", s.api(http.MethodPost, s.authed(s.handleRequestContact)))
	mux.Handle("/api/v1/contacts/{name}/accept", s.api(http.MethodPost, s.authed(s.handleAcceptContact)))
	mux.Handle("/api/v1/contacts/{name}/decline", s.api(http.MethodPost, s.authed(s.handleDeclineContact)))
	mux.Handle("/api/v1/status", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodGet: s.authed(s.handleGetStatus),
		http.MethodPut: s.authed(s.handlePutStatus),
	}))
}

// authedHandler serves a request whose credential has been verified.
type authedHandler func(w http.ResponseWriter, r *http.Request, cred identity.Credential)

// authed checks the request's credential (see [Server.authenticate]) before
// h; without a valid one, or with one naming a removed device, it answers
// 401.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cred, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		// A removed device's credential verifies until it expires: the
		// login server refuses it at once (supernodes, which check
		// credentials offline, until it expires).
		if gone, err := s.st.revoked(r.Context(), cred.User, cred.Key()); err != nil {
			s.writeInternal(w, r, "revocation check", fmt.Errorf("login: revocation of device %s of %q: %w", shortKey(cred.Key()), cred.User, err))
			return
		} else if gone {
			writeDeviceRemoved(w)
			return
		}
		h(w, r, cred)
	}
}

// writeDeviceRemoved answers 401 to a removed device (a refresh, or a
// credential naming it).
func writeDeviceRemoved(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", loginapi.AuthScheme+` realm="parley"`)
	writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: this device was removed from the account; log in with the password on it to use it again",
		loginapi.ErrDeviceRemoved))
}

// authenticate reads "Authorization: Parley <token>" and verifies the token
// with the server's own key and clock. On failure it answers 401 with a
// WWW-Authenticate header and returns false. The token is never logged or
// echoed.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (identity.Credential, bool) {
	fail := func(why string) (identity.Credential, bool) {
		w.Header().Set("WWW-Authenticate", loginapi.AuthScheme+` realm="parley"`)
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: %s", loginapi.ErrUnauthorized, why))
		return identity.Credential{}, false
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return fail("send Authorization: Parley <credential>")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, loginapi.AuthScheme) || tok == "" {
		return fail("the Authorization header must be \"Parley <credential>\"")
	}
	cred, err := identity.Verify(s.pub, tok, s.now())
	switch {
	case errors.Is(err, identity.ErrExpired):
		return fail("credential expired; log in again or refresh")
	case errors.Is(err, identity.ErrNotYetValid):
		return fail("credential not yet valid (check the clock)")
	case err != nil:
		return fail("credential is malformed or not signed by this login server")
	}
	return cred, true
}

// writeJSONExact is writeJSON without HTML escaping, so that raw JSON
// values (mailbox blobs) go out byte for byte as stored.
func writeJSONExact(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeJSON(w, http.StatusInternalServerError, loginapi.ErrorResponse{Error: "internal error"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// rateLimited is a refusal by one of the user endpoints' limiters.
type rateLimited struct {
	what string // "searches", "contact requests"
	wait time.Duration
}

func (e *rateLimited) Error() string { return "too many " + e.what }

func writeRateLimited(w http.ResponseWriter, e *rateLimited) {
	secs := retrySeconds(e.wait)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, loginapi.ErrorResponse{
		Error:      fmt.Sprintf("too many %s, try again in %d s", e.what, secs),
		RetryAfter: secs,
	})
}

// decodeB64 decodes a standard base64 field of exactly n bytes.
func decodeB64(s string, n int) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil && len(b) == n
}

// shortKey names a device key in messages and logs.
func shortKey(k []byte) string {
	s := base64.StdEncoding.EncodeToString(k)
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return s
}

// pathUser checks the {name} path value; on failure it answers 400.
func pathUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if msg := checkUserName(name); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return "", false
	}
	return name, true
}

// queryLimit parses the "limit" query parameter: def when absent, else 1 to
// max. On failure it answers 400.
func queryLimit(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", most))
		return 0, false
	}
	return n, true
}

func (s *Server) handlePutDevice(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	var req loginapi.DeviceRequest
	if !decode(w, r, &req) {
		return
	}
	x, ok := decodeB64(req.X25519, loginapi.X25519KeySize)
	if !ok {
		writeError(w, http.StatusBadRequest, "x25519 must be a 32-byte X25519 public key in standard base64")
		return
	}
	sig, ok := decodeB64(req.Sig, ed25519.SignatureSize)
	if !ok {
		writeError(w, http.StatusBadRequest, "sig must be a 64-byte Ed25519 signature in standard base64")
		return
	}
	key := cred.Key()
	if !identity.VerifyContext(key, loginapi.DeviceContext, loginapi.DeviceMessage(cred.User, key, x), sig) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v (context %s over user, the credential's key and x25519)", loginapi.ErrBadSignature, loginapi.DeviceContext))
		return
	}
	now := s.now()
	dropped, err := s.st.putDevice(r.Context(), deviceRow{user: cred.User, key: key, x25519: x, sig: sig}, now, s.cfg.MaxDevicesPerUser)
	if errors.Is(err, loginapi.ErrUnknownUser) {
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: the credential names no account", loginapi.ErrUnauthorized))
		return
	} else if errors.Is(err, loginapi.ErrDeviceRemoved) {
		// Removed since authed checked.
		writeDeviceRemoved(w)
		return
	} else if err != nil {
		s.writeInternal(w, r, "device registration", fmt.Errorf("login: put device %q: %w", cred.User, err))
		return
	}
	s.log.Info("device registered", "user", cred.User, "device", shortKey(key), "dropped", dropped)
	writeJSON(w, http.StatusOK, loginapi.Device{Key: key, X25519: x, Sig: sig, LastSeen: now.Unix()})
}

func (s *Server) handleDeleteDevice(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	key := cred.Key()
	ok, err := s.st.deleteDevice(r.Context(), cred.User, key)
	if err != nil {
		s.writeInternal(w, r, "device removal", fmt.Errorf("login: delete device %q: %w", cred.User, err))
		return
	}
	n := 0
	if ok {
		n = 1
		s.log.Info("device removed", "user", cred.User, "device", shortKey(key))
	}
	writeJSON(w, http.StatusOK, loginapi.RemovedResponse{Removed: n})
}

func (s *Server) handleMyDevices(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	list, err := s.st.myDevices(r.Context(), cred.User, s.now())
	if err != nil {
		s.writeInternal(w, r, "own device list", fmt.Errorf("login: own devices of %q: %w", cred.User, err))
		return
	}
	self := cred.Key()
	for i := range list {
		list[i].Self = self.Equal(list[i].Key)
	}
	writeJSON(w, http.StatusOK, loginapi.MyDevicesResponse{Devices: list})
}

// handleRemoveDevice is DELETE /api/v1/devices/{key}: the caller removes
// one of their devices (their own included) and revokes its key.
func (s *Server) handleRemoveDevice(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	key, err := loginapi.ParseDeviceKey(r.PathValue("key"))
	if err != nil {
		writeError(w, http.StatusBadRequest, strings.TrimSuffix(err.Error(), ": "+loginapi.ErrBadRequest.Error()))
		return
	}
	ok, err := s.st.removeDevice(r.Context(), cred.User, key, s.now())
	if err != nil {
		s.writeInternal(w, r, "device removal", fmt.Errorf("login: remove device %s of %q: %w", shortKey(key), cred.User, err))
		return
	}
	if !ok {
		// Another user's device is unknown too: do not say it exists.
		writeError(w, http.StatusNotFound, fmt.Sprintf("%v: you have no device %s…", loginapi.ErrUnknownDevice, loginapi.DeviceKeyString(key)[:12]))
		return
	}
	s.log.Info("device removed and revoked", "user", cred.User, "device", shortKey(key), "by", shortKey(cred.Key()), "self", cred.Key().Equal(key))
	writeJSON(w, http.StatusOK, loginapi.RemovedResponse{Removed: 1})
}

// checkPeer answers 404 for an unknown user and 403 for one who is neither
// cred's user nor an accepted contact of theirs, unless the request's
// Parley-Pass header admits cred's user (see [Server.checkPass]).
func (s *Server) checkPeer(w http.ResponseWriter, r *http.Request, cred identity.Credential, name string) bool {
	if name == cred.User {
		return true
	}
	ctx := r.Context()
	exists, err := s.st.userExists(ctx, name)
	if err != nil {
		s.writeInternal(w, r, "user lookup", fmt.Errorf("login: user %q: %w", name, err))
		return false
	}
	if !exists {
		writeError(w, http.StatusNotFound, loginapi.ErrUnknownUser.Error())
		return false
	}
	state, err := s.st.contactState(ctx, cred.User, name)
	if err != nil {
		s.writeInternal(w, r, "contact lookup", fmt.Errorf("login: contact %q of %q: %w", name, cred.User, err))
		return false
	}
	if state != loginapi.ContactAccepted {
		return s.checkPass(w, r, cred, name)
	}
	return true
}

// checkPass admits cred's user to name, who is not their accepted contact,
// if the request has one Parley-Pass header holding a pass that
// passAdmits. It answers 400 for a malformed pass and 403 when there is
// none or it does not admit them. The pass's signature is never logged.
func (s *Server) checkPass(w http.ResponseWriter, r *http.Request, cred identity.Credential, name string) bool {
	vals := r.Header.Values(loginapi.PassHeader)
	if len(vals) == 0 {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%v: %s is not your accepted contact", loginapi.ErrNotContact, name))
		return false
	}
	if len(vals) > 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v: %s header: send one, not %d", loginapi.ErrBadPass, loginapi.PassHeader, len(vals)))
		return false
	}
	p, err := loginapi.ParsePass(vals[0])
	if err != nil {
		writeError(w, http.StatusBadRequest, passError(loginapi.PassHeader+" header", err))
		return false
	}
	ok, err := s.st.passAdmits(r.Context(), name, p)
	if err != nil {
		s.writeInternal(w, r, "pass check", fmt.Errorf("login: pass for %q by %q: %w", name, p.By, err))
		return false
	}
	if !ok {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%v: %s is not your accepted contact and the %s did not admit you", loginapi.ErrNotContact, name, loginapi.PassHeader))
		return false
	}
	s.log.Debug("pass admitted", "user", cred.User, "to", name, "by", p.By, "device", shortKey(p.Device))
	return true
}

// passError is the message of a 400 for a malformed pass at where (the
// header, items[i].pass): "malformed pass: <where>: <why>".
func passError(where string, err error) string {
	why := strings.TrimPrefix(err.Error(), loginapi.ErrBadPass.Error()+": ")
	return fmt.Sprintf("%v: %s: %s", loginapi.ErrBadPass, where, why)
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	name, ok := pathUser(w, r)
	if !ok || !s.checkPeer(w, r, cred, name) {
		return
	}
	list, err := s.st.devices(r.Context(), name)
	if err != nil {
		s.writeInternal(w, r, "device list", fmt.Errorf("login: devices of %q: %w", name, err))
		return
	}
	writeJSON(w, http.StatusOK, loginapi.DevicesResponse{User: name, Devices: list})
}

// checkMessageID returns what is wrong with a mailbox item id, or "".
func checkMessageID(id string) string {
	if id == "" || len(id) > loginapi.MaxMessageIDBytes {
		return fmt.Sprintf("must be 1 to %d bytes", loginapi.MaxMessageIDBytes)
	}
	if !utf8.ValidString(id) {
		return "must be valid UTF-8"
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "must not contain control characters"
		}
	}
	return ""
}

// checkItems validates a mailbox post's items; on failure it answers 400.
func checkItems(w http.ResponseWriter, in []loginapi.MailboxItemWire) ([]mailItem, bool) {
	if len(in) == 0 {
		writeError(w, http.StatusBadRequest, "items is missing or empty")
		return nil, false
	}
	if len(in) > loginapi.MaxMailboxItems {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d items, at most %d per request", len(in), loginapi.MaxMailboxItems))
		return nil, false
	}
	items := make([]mailItem, len(in))
	for i, it := range in {
		bad := func(msg string) ([]mailItem, bool) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("items[%d].%s", i, msg))
			return nil, false
		}
		if msg := checkUserName(it.ToUser); msg != "" {
			return bad("to_user: " + msg)
		}
		dev, ok := decodeB64(it.ToDevice, ed25519.PublicKeySize)
		if !ok {
			return bad("to_device must be a 32-byte Ed25519 key in standard base64")
		}
		if msg := checkMessageID(it.ID); msg != "" {
			return bad("id " + msg)
		}
		if len(it.Blob) == 0 {
			return bad("blob is missing")
		}
		var blob bytes.Buffer
		if err := json.Compact(&blob, it.Blob); err != nil {
			return bad("blob is not valid JSON")
		}
		if blob.String() == "null" {
			return bad("blob must not be null")
		}
		if blob.Len() > loginapi.MaxBlobBytes {
			return bad(fmt.Sprintf("blob is %d bytes, at most %d", blob.Len(), loginapi.MaxBlobBytes))
		}
		var pass *loginapi.Pass
		if len(it.Pass) > 0 && string(it.Pass) != "null" {
			p, err := loginapi.UnmarshalPass(it.Pass)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, loginapi.ErrorResponse{Error: passError(fmt.Sprintf("items[%d].pass", i), err), Item: &i})
				return nil, false
			}
			pass = &p
		}
		items[i] = mailItem{toUser: it.ToUser, toDevice: dev, id: it.ID, blob: blob.Bytes(), pass: pass}
	}
	return items, true
}

func (s *Server) handlePostMailbox(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	var req loginapi.MailboxPostRequest
	if !decodeN(w, r, &req, loginapi.MaxMailboxBodyBytes) {
		return
	}
	items, ok := checkItems(w, req.Items)
	if !ok {
		return
	}
	stored, dups, err := s.st.postMailbox(r.Context(), cred.User, cred.Key(), items, s.now(), s.cfg.MailboxQuotaBytes)
	var me *mailError
	if errors.As(err, &me) {
		it := items[me.index]
		fail := func(status int, msg string) {
			writeJSON(w, status, loginapi.ErrorResponse{Error: msg, Item: &me.index})
		}
		switch {
		case errors.Is(me.err, loginapi.ErrUnknownUser):
			fail(http.StatusNotFound, fmt.Sprintf("%v: items[%d].to_user %s", loginapi.ErrUnknownUser, me.index, it.toUser))
		case errors.Is(me.err, loginapi.ErrNotContact) && it.pass != nil:
			fail(http.StatusForbidden, fmt.Sprintf("%v: items[%d].to_user %s is not your accepted contact and items[%d].pass did not admit you",
				loginapi.ErrNotContact, me.index, it.toUser, me.index))
		case errors.Is(me.err, loginapi.ErrNotContact):
			fail(http.StatusForbidden, fmt.Sprintf("%v: items[%d].to_user %s is not your accepted contact", loginapi.ErrNotContact, me.index, it.toUser))
		case errors.Is(me.err, loginapi.ErrUnknownDevice):
			fail(http.StatusBadRequest, fmt.Sprintf("%v: items[%d].to_device %s of %s", loginapi.ErrUnknownDevice, me.index, shortKey(it.toDevice), it.toUser))
		default:
			fail(http.StatusInsufficientStorage, fmt.Sprintf("%v: items[%d]: the mailbox of %s's device %s would hold more than %d bytes",
				loginapi.ErrQuota, me.index, it.toUser, shortKey(it.toDevice), s.cfg.MailboxQuotaBytes))
		}
		return
	}
	if err != nil {
		s.writeInternal(w, r, "mailbox post", fmt.Errorf("login: mailbox post from %q: %w", cred.User, err))
		return
	}
	s.m.mailboxItems.WithLabelValues("stored").Add(float64(stored))
	for _, it := range items {
		s.m.mailboxPosted.Add(float64(len(it.blob)))
	}
	s.log.Debug("mailbox post", "from", cred.User, "stored", stored, "duplicates", dups)
	writeJSON(w, http.StatusOK, loginapi.MailboxResult{Stored: stored, Duplicates: dups})
}

func (s *Server) handleGetMailbox(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	limit, ok := queryLimit(w, r, loginapi.DefaultMailboxFetch, loginapi.MaxMailboxFetch)
	if !ok {
		return
	}
	list, more, err := s.st.mailbox(r.Context(), cred.User, cred.Key(), limit, loginapi.MaxMailboxFetchBytes, s.now())
	if err != nil {
		s.writeInternal(w, r, "mailbox fetch", fmt.Errorf("login: mailbox of %q: %w", cred.User, err))
		return
	}
	s.m.mailboxItems.WithLabelValues("fetched").Add(float64(len(list)))
	writeJSONExact(w, http.StatusOK, loginapi.MailboxResponse{Items: list, More: more})
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	var req loginapi.AckRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Seqs) > loginapi.MaxAckSeqs {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d seqs, at most %d per request", len(req.Seqs), loginapi.MaxAckSeqs))
		return
	}
	n, err := s.st.ackMailbox(r.Context(), cred.User, cred.Key(), req.Seqs)
	if err != nil {
		s.writeInternal(w, r, "mailbox ack", fmt.Errorf("login: mailbox ack of %q: %w", cred.User, err))
		return
	}
	s.m.mailboxItems.WithLabelValues("acked").Add(float64(n))
	writeJSON(w, http.StatusOK, loginapi.RemovedResponse{Removed: n})
}

func (s *Server) handleContacts(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	list, err := s.st.contacts(r.Context(), cred.User)
	if err != nil {
		s.writeInternal(w, r, "contact list", fmt.Errorf("login: contacts of %q: %w", cred.User, err))
		return
	}
	writeJSON(w, http.StatusOK, loginapi.ContactsResponse{Contacts: list})
}

// contactOp runs one of request, accept and decline and writes the answer.
func (s *Server) contactOp(w http.ResponseWriter, r *http.Request, cred identity.Credential, op string,
	f func(peer string) (string, error)) {
	peer, ok := pathUser(w, r)
	if !ok {
		return
	}
	if peer == cred.User {
		writeError(w, http.StatusBadRequest, "you cannot be your own contact")
		return
	}
	state, err := f(peer)
	var rl *rateLimited
	switch {
	case errors.As(err, &rl):
		s.m.rateLimited.WithLabelValues(limitContactRequests).Inc()
		s.log.Warn("contact requests rate limited", "user", cred.User)
		writeRateLimited(w, rl)
	case errors.Is(err, loginapi.ErrUnknownUser):
		writeError(w, http.StatusNotFound, loginapi.ErrUnknownUser.Error())
	case errors.Is(err, loginapi.ErrNoRequest):
		writeError(w, http.StatusConflict, fmt.Sprintf("%v: %s", loginapi.ErrNoRequest, peer))
	case errors.Is(err, loginapi.ErrQuota):
		writeError(w, http.StatusInsufficientStorage, err.Error())
	case err != nil:
		s.writeInternal(w, r, "contact "+op, fmt.Errorf("login: contact %s %q by %q: %w", op, peer, cred.User, err))
	default:
		s.log.Info("contact "+op, "user", cred.User, "peer", peer, "state", state)
		writeJSON(w, http.StatusOK, loginapi.Contact{User: peer, State: state})
	}
}

func (s *Server) handleRequestContact(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	s.contactOp(w, r, cred, "request", func(peer string) (string, error) {
		allow := func() error {
			if wait := s.requestLim.beginAddr(cred.User, s.now()); wait > 0 {
				return &rateLimited{what: "contact requests", wait: wait}
			}
			return nil
		}
		return s.st.requestContact(r.Context(), cred.User, peer, s.now(), s.cfg.MaxContacts, allow)
	})
}

func (s *Server) handleAcceptContact(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	s.contactOp(w, r, cred, "accept", func(peer string) (string, error) {
		return s.st.acceptContact(r.Context(), cred.User, peer, s.now())
	})
}

func (s *Server) handleDeclineContact(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	s.contactOp(w, r, cred, "decline", func(peer string) (string, error) {
		if _, err := s.st.declineContact(r.Context(), cred.User, peer); err != nil {
			return "", err
		}
		return loginapi.ContactNone, nil
	})
}

func (s *Server) handlePutStatus(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	var req loginapi.StatusBody
	if !decode(w, r, &req) {
		return
	}
	if !slices.Contains(presence.Settable(), req.Status) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status must be one of %s, not %q",
			strings.Join(presence.Settable(), ", "), loginapi.Sanitize(req.Status)))
		return
	}
	if err := s.st.setStatus(r.Context(), cred.User, req.Status); errors.Is(err, loginapi.ErrUnknownUser) {
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: the credential names no account", loginapi.ErrUnauthorized))
		return
	} else if err != nil {
		s.writeInternal(w, r, "status", fmt.Errorf("login: status of %q: %w", cred.User, err))
		return
	}
	writeJSON(w, http.StatusOK, loginapi.StatusBody{Status: req.Status})
}

func (s *Server) handleGetStatus(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	st, err := s.st.status(r.Context(), cred.User)
	if errors.Is(err, loginapi.ErrUnknownUser) {
		writeError(w, http.StatusUnauthorized, fmt.Sprintf("%v: the credential names no account", loginapi.ErrUnauthorized))
		return
	} else if err != nil {
		s.writeInternal(w, r, "status", fmt.Errorf("login: status of %q: %w", cred.User, err))
		return
	}
	writeJSON(w, http.StatusOK, loginapi.StatusBody{Status: st})
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, cred identity.Credential) {
	prefix := r.URL.Query().Get("prefix")
	// Every prefix of a valid name is a valid name: the same check applies.
	if len(prefix) > identity.MaxUserLen || identity.CheckUser(prefix) != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix must be 1 to %d characters of a-z, 0-9, '.', '_' and '-', starting with a letter",
			identity.MaxUserLen))
		return
	}
	limit, ok := queryLimit(w, r, loginapi.MaxSearchResults, loginapi.MaxSearchResults)
	if !ok {
		return
	}
	addr := s.clientAddr(r)
	if wait := s.searchLim.begin(cred.User, addr, s.now()); wait > 0 {
		s.m.rateLimited.WithLabelValues(limitSearches).Inc()
		s.log.Warn("search rate limited", "user", cred.User, "addr", addr)
		writeRateLimited(w, &rateLimited{what: "searches", wait: wait})
		return
	}
	list, err := s.st.searchUsers(r.Context(), prefix, limit)
	if err != nil {
		s.writeInternal(w, r, "search", fmt.Errorf("login: search by %q: %w", cred.User, err))
		return
	}
	writeJSON(w, http.StatusOK, loginapi.SearchResponse{Users: list})
}
