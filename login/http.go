package login

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// Handler returns the HTTP handler: the JSON API under /api/v1/, /healthz,
// and Config.Web (or a JSON 404) at "/".
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/register", s.api(http.MethodPost, s.handleRegister))
	mux.Handle("/api/v1/login", s.api(http.MethodPost, s.handleLogin))
	mux.Handle("/api/v1/refresh", s.api(http.MethodPost, s.handleRefresh))
	mux.Handle("/api/v1/password", s.api(http.MethodPost, s.handlePassword))
	mux.Handle("/api/v1/key", s.api(http.MethodGet, s.handleKey))
	mux.Handle("/api/v1/users/{name}", s.api(http.MethodGet, s.handleUser))
	mux.Handle("/api/v1/supernodes", s.apiMethods(map[string]http.HandlerFunc{
		http.MethodGet:    s.handleListSupernodes,
		http.MethodPost:   s.handleHeartbeat,
		http.MethodDelete: s.handleLeave,
	}))
	s.userRoutes(mux)
	s.fileRoutes(mux)
	mux.Handle("/api/", http.HandlerFunc(notFound))
	mux.Handle("/healthz", s.api(http.MethodGet, s.handleHealth))
	if s.cfg.Web != nil {
		mux.Handle("/", s.cfg.Web)
	} else {
		mux.Handle("/", http.HandlerFunc(notFound))
	}
	return mux
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not found")
}

// api serves h for one method (GET also answers HEAD).
func (s *Server) api(method string, h http.HandlerFunc) http.Handler {
	return s.apiMethods(map[string]http.HandlerFunc{method: h})
}

// apiMethods dispatches by method, answering 405 for others and 503 once
// the server is closed.
func (s *Server) apiMethods(hs map[string]http.HandlerFunc) http.Handler {
	if h, ok := hs[http.MethodGet]; ok {
		hs[http.MethodHead] = h
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if _, ok := hs[m]; ok {
			allow = append(allow, m)
		}
	}
	allowed := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := hs[r.Method]
		if !ok {
			w.Header().Set("Allow", allowed)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use %s", loginapi.Sanitize(r.Method), allowed))
			return
		}
		if s.closed.Load() {
			writeError(w, http.StatusServiceUnavailable, "login server is shutting down")
			return
		}
		h(w, r)
	})
}

// writeJSON writes v with status. API answers are never cached: they carry
// tokens.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, loginapi.ErrorResponse{Error: msg})
}

// writeInternal logs err and answers 500 (503 when the client went away or
// the server is closing).
func (s *Server) writeInternal(w http.ResponseWriter, r *http.Request, op string, err error) {
	if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
		writeError(w, http.StatusServiceUnavailable, "request canceled")
		return
	}
	if s.closed.Load() {
		writeError(w, http.StatusServiceUnavailable, "login server is shutting down")
		return
	}
	s.log.Error(op+" failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func (s *Server) writeAuthFailure(w http.ResponseWriter, f *authFailure) {
	if f.err == loginapi.ErrRateLimited {
		secs := retrySeconds(f.retryAfter)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeJSON(w, http.StatusTooManyRequests, loginapi.ErrorResponse{
			Error:      fmt.Sprintf("%v, try again in %d s", loginapi.ErrRateLimited, secs),
			RetryAfter: secs,
		})
		return
	}
	writeError(w, f.status, f.err.Error())
}

// decode reads a JSON request body of at most MaxBodyBytes into v. On
// failure it writes the 4xx answer and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeN(w, r, v, MaxBodyBytes)
}

// decodeN is decode with a body cap of limit bytes.
func decodeN(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "content type must be application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
		} else {
			writeError(w, http.StatusBadRequest, "could not read request body")
		}
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		writeError(w, http.StatusBadRequest, "request body is empty, want a JSON object")
		return false
	}
	if msg := duplicateKey(body); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeError(w, http.StatusBadRequest, loginapi.JSONErrorMessage(err))
		return false
	}
	return true
}

// checkUserName returns identity.CheckUser's message, without echoing names
// too long to be one.
func checkUserName(name string) string {
	if len(name) > identity.MaxUserLen {
		return fmt.Sprintf("%v: must be 1 to %d characters", identity.ErrBadUser, identity.MaxUserLen)
	}
	if err := identity.CheckUser(name); err != nil {
		return err.Error()
	}
	return ""
}

func checkPasswordLen(field, pw string) string {
	switch {
	case len(pw) < MinPasswordBytes:
		return fmt.Sprintf("%s must be at least %d bytes", field, MinPasswordBytes)
	case len(pw) > MaxPasswordBytes:
		return fmt.Sprintf("%s must be at most %d bytes", field, MaxPasswordBytes)
	}
	return ""
}

func parsePublicKey(s string) (ed25519.PublicKey, string) {
	return parseKeyField("public_key", s)
}

func parseKeyField(field, s string) (ed25519.PublicKey, string) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, field + " must be a 32-byte Ed25519 key in standard base64"
	}
	return ed25519.PublicKey(b), ""
}

// checkSupernodeAddr validates a heartbeat address and returns its canonical
// form, or a message saying what is wrong.
func checkSupernodeAddr(s string) (string, string) {
	const want = "addr must be a ws:// or wss:// URL with host and port"
	if s == "" {
		return "", "addr is missing; " + want
	}
	if len(s) > MaxSupernodeAddr {
		return "", fmt.Sprintf("addr longer than %d bytes", MaxSupernodeAddr)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Opaque != "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Hostname() == "" {
		return "", want
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", want
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", want
	}
	canon := u.String()
	if len(canon) > MaxSupernodeAddr {
		return "", fmt.Sprintf("addr longer than %d bytes", MaxSupernodeAddr)
	}
	return canon, ""
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req loginapi.RegisterRequest
	if !decode(w, r, &req) {
		return
	}
	if msg := checkUserName(req.User); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := checkPasswordLen("password", req.Password); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	// Limited before any lookup or hashing: every attempt with a valid
	// name and password length counts, a taken name too (so registration
	// cannot enumerate names faster than this either).
	addr := s.clientAddr(r)
	if !s.allowRegistration(w, addr) {
		return
	}
	ctx := r.Context()
	if ok, err := s.st.userExists(ctx, req.User); err != nil {
		s.m.registrations.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "register", err)
		return
	} else if ok {
		s.m.registrations.WithLabelValues(resultTaken).Inc()
		writeError(w, http.StatusConflict, loginapi.ErrUserExists.Error())
		return
	}
	h, err := s.hash(ctx, req.Password)
	if err != nil {
		s.m.registrations.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "register", err)
		return
	}
	if err := s.st.createUser(ctx, req.User, h, s.now()); errors.Is(err, loginapi.ErrUserExists) {
		s.m.registrations.WithLabelValues(resultTaken).Inc()
		writeError(w, http.StatusConflict, loginapi.ErrUserExists.Error())
		return
	} else if err != nil {
		s.m.registrations.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "register", fmt.Errorf("login: register %q: %w", req.User, err))
		return
	}
	s.m.registrations.WithLabelValues(resultOK).Inc()
	s.log.Info("registered", "user", req.User, "addr", addr)
	writeJSON(w, http.StatusCreated, loginapi.UserResponse{User: req.User})
}

// allowRegistration applies the registration limits for a registration from
// addr, per address and over all addresses; when either is reached it
// answers 429 and returns false.
func (s *Server) allowRegistration(w http.ResponseWriter, addr string) bool {
	now := s.now()
	wait := s.regLim.beginAddr(addr, now)
	if wait == 0 {
		if wait = s.regAllLim.beginAddr("", now); wait > 0 {
			s.regLim.cancelAddr(addr, now)
			s.log.Warn("registrations rate limited (all addresses)", "addr", addr, "retry_after_s", retrySeconds(wait))
		}
	} else {
		s.log.Warn("registrations rate limited", "addr", addr, "retry_after_s", retrySeconds(wait))
	}
	if wait > 0 {
		s.m.registrations.WithLabelValues(resultRateLimited).Inc()
		s.m.rateLimited.WithLabelValues(limitRegistrations).Inc()
		writeRateLimited(w, &rateLimited{what: "registrations", wait: wait})
		return false
	}
	return true
}

// checkLoginFields answers 400 for a bad user name or an over-long password
// (a short one is just wrong: 401 from the password check, like any other).
func checkLoginFields(w http.ResponseWriter, user, password string) bool {
	if msg := checkUserName(user); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return false
	}
	if len(password) > MaxPasswordBytes {
		writeError(w, http.StatusBadRequest, checkPasswordLen("password", password))
		return false
	}
	return true
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginapi.LoginRequest
	if !decode(w, r, &req) {
		return
	}
	if !checkLoginFields(w, req.User, req.Password) {
		return
	}
	pub, msg := parsePublicKey(req.PublicKey)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := r.Context()
	addr := s.clientAddr(r)
	if _, fail, err := s.checkPassword(ctx, "login", req.User, req.Password, addr); err != nil {
		s.m.logins.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "login", fmt.Errorf("login: login %q: %w", req.User, err))
		return
	} else if fail != nil {
		if fail.err == loginapi.ErrRateLimited {
			s.m.logins.WithLabelValues(resultRateLimited).Inc()
		} else {
			s.m.logins.WithLabelValues(resultWrongPassword).Inc()
		}
		s.writeAuthFailure(w, fail)
		return
	}
	tok, th, err := newRefreshToken()
	if err != nil {
		s.m.logins.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "login", err)
		return
	}
	now := s.now()
	refreshExp := now.Add(s.cfg.RefreshTTL)
	reinstated, err := s.st.addRefresh(ctx, th, req.User, pub, now, refreshExp, refreshKeep)
	if err != nil {
		s.m.logins.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "login", fmt.Errorf("login: login %q: store refresh token: %w", req.User, err))
		return
	}
	if reinstated {
		s.log.Info("removed device reinstated by a password login", "user", req.User, "device", shortKey(pub), "addr", addr)
	}
	resp, err := s.issue(ctx, req.User, pub, tok, refreshExp)
	if err != nil {
		s.m.logins.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "login", fmt.Errorf("login: login %q: %w", req.User, err))
		return
	}
	s.m.logins.WithLabelValues(resultOK).Inc()
	s.log.Info("logged in", "user", req.User, "addr", addr)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req loginapi.RefreshRequest
	if !decode(w, r, &req) {
		return
	}
	if msg := checkUserName(req.User); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	pub, msg := parsePublicKey(req.PublicKey)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	th, ok := refreshHash(req.RefreshToken)
	if !ok {
		writeError(w, http.StatusUnauthorized, loginapi.ErrInvalidRefresh.Error())
		return
	}
	ctx := r.Context()
	now := s.now()
	refreshExp := now.Add(s.cfg.RefreshTTL)
	if err := s.st.useRefresh(ctx, th, req.User, pub, now, refreshExp); errors.Is(err, loginapi.ErrInvalidRefresh) {
		s.m.refreshes.WithLabelValues(resultRefused).Inc()
		s.log.Info("refresh refused", "user", req.User, "addr", s.clientAddr(r))
		writeError(w, http.StatusUnauthorized, loginapi.ErrInvalidRefresh.Error())
		return
	} else if errors.Is(err, loginapi.ErrDeviceRemoved) {
		s.m.refreshes.WithLabelValues(resultRefused).Inc()
		s.log.Info("refresh refused: device removed", "user", req.User, "device", shortKey(pub), "addr", s.clientAddr(r))
		writeDeviceRemoved(w)
		return
	} else if err != nil {
		s.m.refreshes.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "refresh", fmt.Errorf("login: refresh %q: %w", req.User, err))
		return
	}
	resp, err := s.issue(ctx, req.User, pub, req.RefreshToken, refreshExp)
	if err != nil {
		s.m.refreshes.WithLabelValues(resultError).Inc()
		s.writeInternal(w, r, "refresh", fmt.Errorf("login: refresh %q: %w", req.User, err))
		return
	}
	s.m.refreshes.WithLabelValues(resultOK).Inc()
	s.log.Info("refreshed", "user", req.User)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request) {
	var req loginapi.PasswordRequest
	if !decode(w, r, &req) {
		return
	}
	if !checkLoginFields(w, req.User, req.Password) {
		return
	}
	if msg := checkPasswordLen("new_password", req.NewPassword); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := r.Context()
	stored, fail, err := s.checkPassword(ctx, "password change", req.User, req.Password, s.clientAddr(r))
	if err != nil {
		s.writeInternal(w, r, "password change", fmt.Errorf("login: password %q: %w", req.User, err))
		return
	} else if fail != nil {
		s.writeAuthFailure(w, fail)
		return
	}
	h, err := s.hash(ctx, req.NewPassword)
	if err != nil {
		s.writeInternal(w, r, "password change", err)
		return
	}
	if err := s.st.replacePasswordHash(ctx, req.User, stored, h, true); errors.Is(err, loginapi.ErrWrongPassword) {
		// Changed concurrently: the password just checked is no longer current.
		writeError(w, http.StatusUnauthorized, errBadLogin.Error())
		return
	} else if err != nil {
		s.writeInternal(w, r, "password change", fmt.Errorf("login: password %q: %w", req.User, err))
		return
	}
	s.log.Info("password changed; refresh tokens revoked", "user", req.User, "addr", s.clientAddr(r))
	writeJSON(w, http.StatusOK, loginapi.UserResponse{User: req.User})
}

func (s *Server) handleKey(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, loginapi.KeyResponse{Alg: identity.Alg, PublicKey: s.pub})
}

func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if msg := checkUserName(name); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	// Name lookups are limited per address: they tell which names exist.
	addr := s.clientAddr(r)
	if wait := s.lookupLim.beginAddr(addr, s.now()); wait > 0 {
		s.m.rateLimited.WithLabelValues(limitNameLookups).Inc()
		s.log.Warn("name lookups rate limited", "addr", addr)
		writeRateLimited(w, &rateLimited{what: "name lookups", wait: wait})
		return
	}
	ok, err := s.st.userExists(r.Context(), name)
	if err != nil {
		s.writeInternal(w, r, "user lookup", fmt.Errorf("login: user %q: %w", name, err))
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, loginapi.ErrUnknownUser.Error())
		return
	}
	writeJSON(w, http.StatusOK, loginapi.UserResponse{User: name})
}

// signed is a checked heartbeat or leave.
type signed struct {
	addr string // canonical
	key  ed25519.PublicKey
	ts   int64
}

// checkSigned validates a heartbeat's or leave's fields, its ts against the
// server's clock and its signature with context sigCtx. On failure it writes
// the 400 answer and returns false.
func (s *Server) checkSigned(w http.ResponseWriter, req *loginapi.SignedRequest, sigCtx string) (signed, bool) {
	addr, msg := checkSupernodeAddr(req.Addr)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return signed{}, false
	}
	key, msg := parseKeyField("key", req.Key)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return signed{}, false
	}
	sig, err := base64.StdEncoding.DecodeString(req.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		writeError(w, http.StatusBadRequest, "sig must be a 64-byte Ed25519 signature in standard base64")
		return signed{}, false
	}
	now := s.now()
	if t := time.Unix(req.TS, 0); t.Before(now.Add(-identity.Skew)) || t.After(now.Add(identity.Skew)) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v: ts %d, the server's clock says %d (±%d s allowed)",
			loginapi.ErrClockSkew, req.TS, now.Unix(), int64(identity.Skew/time.Second)))
		return signed{}, false
	}
	if !identity.VerifyContext(key, sigCtx, loginapi.SupernodeMessage(req.Addr, key, req.TS), sig) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v (context %s over addr, key and ts)", loginapi.ErrBadSignature, sigCtx))
		return signed{}, false
	}
	return signed{addr: addr, key: key, ts: req.TS}, true
}

// keyID shortens a public node key for logs.
func keyID(k ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k)[:12]
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req loginapi.SignedRequest
	if !decode(w, r, &req) {
		return
	}
	sn, ok := s.checkSigned(w, &req, loginapi.HeartbeatContext)
	if !ok {
		return
	}
	ctx := r.Context()
	src := peerAddr(r)
	hb := heartbeat{addr: sn.addr, key: sn.key, ts: sn.ts}
	stamp := func() {
		hb.now = s.now()
		hb.cutoff = hb.now.Add(-s.cfg.SupernodeTTL)
		hb.verifiedCutoff = hb.now.Add(-s.cfg.DialBackInterval)
	}
	stamp()
	err := s.st.heartbeat(ctx, hb, MaxSupernodes)
	if errors.Is(err, errNeedDialBack) {
		if f := s.dialBack(ctx, src, sn.addr, sn.key); f != nil {
			switch f.err {
			case loginapi.ErrDialBackLimited:
				s.m.dialBacks.WithLabelValues(resultRateLimited).Inc()
			case loginapi.ErrDialBackDenied:
				s.m.dialBacks.WithLabelValues(resultDenied).Inc()
			default:
				s.m.dialBacks.WithLabelValues(resultFailed).Inc()
			}
			switch {
			case f.err == loginapi.ErrDialBackLimited:
			case f.cert != "":
				// A certificate problem is the operator's to fix: said once
				// (per supernode and problem), clearly, then only at debug.
				lvl := slog.LevelDebug
				if s.certWarned.first(sn.addr, f.cert) {
					lvl = slog.LevelWarn
				}
				s.log.Log(ctx, lvl, "supernode refused: its TLS certificate is not accepted", "addr", sn.addr, "problem", f.cert,
					"hint", certHint, "key", keyID(sn.key), "from", src)
			default:
				s.log.Info("supernode refused", "addr", sn.addr, "key", keyID(sn.key), "from", src, "reason", f.msg)
			}
			if f.retryAfter > 0 {
				secs := retrySeconds(f.retryAfter)
				w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
				writeJSON(w, f.status, loginapi.ErrorResponse{Error: f.msg, RetryAfter: secs})
				return
			}
			writeError(w, f.status, f.msg)
			return
		}
		s.m.dialBacks.WithLabelValues(resultOK).Inc()
		hb.verified = true
		stamp()
		err = s.st.heartbeat(ctx, hb, MaxSupernodes)
		if err == nil {
			s.log.Info("supernode verified by dial-back", "addr", sn.addr, "key", keyID(sn.key), "from", src)
		}
	}
	switch {
	case errors.Is(err, loginapi.ErrSupernodeListFull):
		s.log.Warn("supernode list full", "addr", sn.addr, "from", src)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%v (%d live entries)", loginapi.ErrSupernodeListFull, MaxSupernodes))
		return
	case errors.Is(err, loginapi.ErrReplayed):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.writeInternal(w, r, "heartbeat", fmt.Errorf("login: heartbeat %q: %w", sn.addr, err))
		return
	}
	s.log.Debug("supernode heartbeat", "addr", sn.addr, "from", src)
	writeJSON(w, http.StatusOK, loginapi.HeartbeatResponse{TTL: max(int64(s.cfg.SupernodeTTL.Seconds()), 1)})
}

func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) {
	var req loginapi.SignedRequest
	if !decode(w, r, &req) {
		return
	}
	sn, ok := s.checkSigned(w, &req, loginapi.LeaveContext)
	if !ok {
		return
	}
	removed, err := s.st.leave(r.Context(), sn.addr, sn.key, sn.ts)
	switch {
	case errors.Is(err, loginapi.ErrKeyMismatch):
		writeError(w, http.StatusForbidden, fmt.Sprintf("%v: %s", loginapi.ErrKeyMismatch, sn.addr))
		return
	case errors.Is(err, loginapi.ErrReplayed):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.writeInternal(w, r, "leave", fmt.Errorf("login: leave %q: %w", sn.addr, err))
		return
	}
	if removed {
		s.log.Info("supernode left", "addr", sn.addr, "key", keyID(sn.key), "from", s.clientAddr(r))
	}
	writeJSON(w, http.StatusOK, loginapi.LeaveResponse{Removed: removed})
}

func (s *Server) handleListSupernodes(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	list, err := s.st.supernodes(r.Context(), now.Add(-s.cfg.SupernodeTTL), MaxSupernodes)
	if err != nil {
		s.writeInternal(w, r, "list supernodes", err)
		return
	}
	writeJSON(w, http.StatusOK, loginapi.SupernodesResponse{Supernodes: list})
}
