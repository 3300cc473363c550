// Package login is Parley's one central server and its Go client.
//
// The login server keeps the accounts (argon2id password hashes in SQLite),
// checks passwords, limits password guessing, and signs short-lived
// credentials (see package internal/identity) that bind a user name to a
// public key the user made on their device. Supernodes check those
// credentials offline with the server's public key, so the login server is
// not on the path of presence, signalling or media. It also keeps the
// bootstrap list of supernodes, fed by their heartbeats, and the server half
// of contacts, presence status, user search, the per-device mailboxes of
// end-to-end encrypted offline messages and a store of end-to-end encrypted
// files for offline recipients.
//
// # Wire protocol
//
// HTTP with JSON bodies under /api/v1/. Requests with a body must have
// Content-Type application/json (415 otherwise) and a body of at most 64 KiB
// (413 otherwise) holding one JSON object; unknown fields are ignored, a key
// that occurs twice in one object (at any depth, also in keys differing only
// in case) is 400 "duplicate key ...". Every error answer is
// a 4xx or 5xx status with the body {"error":"one clear line"}; an
// unsupported method is 405 with an Allow header. Binary values are base64:
// public keys in the standard alphabet with padding, refresh tokens in the
// URL alphabet without padding. Times are Unix seconds.
//
// A client's life:
//
//	POST /api/v1/register  once, to create the account
//	POST /api/v1/login     password + fresh public key → credential, refresh token, supernodes
//	...attach to a supernode with the credential...
//	POST /api/v1/refresh   before the credential expires, without the password
//
// A supernode heartbeats POST /api/v1/supernodes every few seconds (well
// within the returned ttl), signed with its node key, to stay listed; the
// server lists it only after dialling its address back.
//
// POST /api/v1/register {"user","password"} → 201 {"user"}.
// user: 1 to 32 characters of a-z, 0-9, '.', '_', '-', starting with a
// letter ([identity.CheckUser]). password: 8 to 1024 bytes. Errors: 400
// invalid name or password length, 409 "user already exists" (inherent: a
// taken name must be refused), 429 "too many registrations, try again in N
// s": at most MaxRegistrationsPerAddr (5) attempts per client address per
// RegistrationWindow (1 h), taken names included, and
// MaxRegistrationsPerMinute (60) from all addresses, refused before any
// lookup or password hashing.
//
// POST /api/v1/login {"user","password","public_key"} → 200 LoginResponse:
//
//	{"user": "alice",
//	 "credential": "<token, see identity>",      // valid CredentialTTL (1 h)
//	 "expires": 1800003600,
//	 "refresh_token": "<32 random bytes, base64url>",
//	 "refresh_expires": 1802592000,               // RefreshTTL (30 days)
//	 "login_key": "<server Ed25519 public key, base64>",
//	 "supernodes": [{"addr": "ws://host:port/v1/ws", "last_seen": 1800000000,
//	                 "key": "<node Ed25519 public key, base64>"}]}
//
// public_key is the user's 32-byte Ed25519 public key. Errors: 400 malformed
// fields (also a password over 1024 bytes), 401 "wrong user name or
// password" for a wrong password and an unknown user alike (same answer,
// same counts, and the unknown user's check runs argon2id against a dummy
// hash so that it takes as long: login does not tell which names exist),
// 429 "too many failed logins, try again in N s" with "retry_after": N and
// a Retry-After header.
//
// Rate limiting limits the guesser's address, never the user: failures (a
// wrong password or an unknown user) count within a sliding FailureWindow
// (5 min) per client address (the host of the connection's remote address,
// or the forwarded one from a TrustedProxies front end; IPv6 by /64), per
// (address, user) and per user. An attempt is refused with 429 before the
// password is looked at when its address has MaxFailuresPerAddr (20)
// failures, or MaxFailuresPerAddrUser (5) for this user, or when its
// address has failed for this user and the user has MaxFailuresPerUser
// (100) failures from all addresses. So the right password from an address
// that did not fail for the user is always let in, however many guesses
// others make. Refused attempts do not extend the window; a successful login
// clears its address's count for the user. Refresh is never limited by
// password failures. Counts live in the server's memory.
//
// POST /api/v1/refresh {"user","refresh_token","public_key"} → 200
// LoginResponse with a new credential for public_key (which may differ from
// the one at login) and the same refresh token, its expiry moved to now +
// RefreshTTL. Errors: 400 malformed user or key, 401 "invalid refresh token"
// (unknown, expired, revoked or another user's). A user keeps at most 32
// refresh tokens (one per login); the oldest are dropped.
//
// POST /api/v1/password {"user","password","new_password"} → 200 {"user"}.
// Same checks, errors and rate limiting as login; new_password 8 to 1024
// bytes. Revokes every refresh token of the user; credentials already
// issued stay valid until they expire.
//
// GET /api/v1/key → {"alg":"Ed25519","public_key":"<base64>"}: the key that
// verifies credentials. Pin it where the transport is not trusted.
//
// GET /api/v1/users/{name} → 200 {"user":name} or 404 "unknown user"; 400
// for a name that cannot exist. It tells "no such user" from "offline".
// Limited to MaxLookupsPerAddr (30) per client address per LookupWindow
// (1 min): 429 "too many name lookups, try again in N s".
//
// POST /api/v1/supernodes {"addr","key","ts","sig"} → 200 {"ttl":seconds}:
// a heartbeat. addr: a ws:// or wss:// URL with host and a port, no user
// info, query or fragment, at most 256 bytes; it is listed in canonical
// form. key: the supernode's 32-byte Ed25519 node key (package
// internal/nodeid). ts: the current Unix time in seconds. sig:
// identity.SignContext(node key, "parley-heartbeat-v1",
// [SupernodeMessage](addr as sent, key, ts)), that is over
// addr || 0x00 || key || ts as 8 bytes big-endian. Refused with 400: a
// signature that does not verify ("signature does not verify ..."), a ts
// further than identity.Skew (60 s) from the server's clock ("ts is outside
// the allowed clock skew ..."), or a ts older than the last one accepted for
// addr and key ("ts is older than the last accepted one ..."; the same ts
// again is accepted).
//
// Dial-back: a heartbeat for an address that is not listed, is listed with
// another key, or whose last successful dial-back is older than
// DialBackInterval (10 min) makes the server dial the address back
// (nodeid.Check: GET http(s)://host:port/v1/identify?nonce=…, answered with
// the node key's signature over the nonce and host:port). Only if the
// address answers with the heartbeat's key is the entry (addr, key,
// last_seen, verified_at) stored, replacing another key; otherwise 422
// "dial-back to ws://…: <reason>" and nothing changes. Within the interval a
// heartbeat signed by the listed key only refreshes last_seen. The dial-back
// host must be an IP literal or a name whose addresses (at most 4 are
// used) all pass addrpolicy.PeerAllowed with DialBackAllow; loopback, private,
// link-local and other special-purpose addresses are refused with 403
// "address not allowed for dial-back: ...", and the connection goes only to
// the checked IPs, never through a proxy. Each dial-back counts against the
// client address (as for login failures): beyond MaxDialBacksPerAddr (30)
// in DialBackWindow (1 min), 429 "too many dial-backs from this address, try
// again in N s" with "retry_after" and Retry-After.
//
// A supernode stays listed for SupernodeTTL (30 s) after its last accepted
// heartbeat. At most 1000 live entries: a new address beyond that is refused
// with 503 "supernode list is full", before any dial-back. A listing proves
// that the holder of the key answered at the address recently, not that the
// supernode is honest: clients still rely on credentials for security.
//
// DELETE /api/v1/supernodes {"addr","key","ts","sig"} → 200
// {"removed":bool}: a leave, signed like a heartbeat with context
// "parley-leave-v1", for a supernode stepping down or shutting down. It
// removes the entry if it is listed with key (removed false if not listed);
// 403 "supernode is listed with another key: addr" otherwise; 400 as for
// heartbeats.
//
// GET /api/v1/supernodes → {"supernodes":[{"addr","last_seen","key"}...]}:
// the verified entries heard from within SupernodeTTL, freshest first; key
// is the node key the last dial-back proved (base64). The login response
// carries the same list.
//
// # User endpoints
//
// Devices, per-device mailboxes, contacts, status and search take
// "Authorization: Parley <credential>" (see [AuthScheme]; 401 "missing or
// invalid credential: …" otherwise), the credential this server issued: it
// names the user and the device (its Ed25519 key). In short (docs/login.md
// has every field, limit and status):
//
//	PUT    /api/v1/devices/self        {"x25519","sig"} → Device; sig over DeviceMessage with DeviceContext
//	DELETE /api/v1/devices/self        → {"removed"}; drops the device's mailbox
//	GET    /api/v1/devices             → {"devices":[MyDevice]}; the caller's own, "self" marked
//	DELETE /api/v1/devices/{key}       → {"removed":1}; key base64url; removes and revokes one of the caller's (404 otherwise)
//	GET    /api/v1/users/{name}/devices → {"user","devices":[Device]}; self, accepted contacts or a Parley-Pass (403)
//	POST   /api/v1/mailbox             {"items":[MailboxItem]} → MailboxResult; all or nothing
//	GET    /api/v1/mailbox?limit=N     → {"items":[MailboxEntry],"more"}; the caller device's, oldest first
//	POST   /api/v1/mailbox/ack         {"seqs"} → {"removed"}
//	GET    /api/v1/contacts            → {"contacts":[Contact]}
//	POST   /api/v1/contacts/{name}[/accept|/decline] → Contact
//	PUT    /api/v1/status, GET /api/v1/status  {"status"}
//	GET    /api/v1/users?prefix=P&limit=N → {"users":[...]}; rate limited
//	POST   /api/v1/files               {"id","size","recipients"} → StoredFileInfo (201; 200 for a repeat)
//	PUT    /api/v1/files/{id}/chunks/{index}  sealed chunk (application/octet-stream) → 204; owner only
//	GET    /api/v1/files/{id}          → StoredFileInfo; owner or recipient (404 for anyone else)
//	GET    /api/v1/files/{id}/chunks/{index}  → the sealed chunk's bytes
//	DELETE /api/v1/files/{id}          → {"deleted"}; the owner's deletes, a recipient's marks their claim taken
//
// Mailbox items go only to the sender's own devices, an accepted contact's,
// or those of a user the item's pass admits the sender to; the store holds
// opaque blobs (compacted JSON, returned byte for byte) and routing, never
// plaintext. A pass (loginapi.Pass, for group members who are not contacts)
// is signed by a registered device of an accepted contact of the user it
// reaches; it is checked only when the caller is not a contact. Statuses:
// 404 unknown user, 403 not a contact (and no pass admits the caller), 400
// malformed item, pass or unregistered device, 409 accept without request,
// 429 rate limited (with Retry-After), 507 quota exceeded.
//
// Stored files hold chunks sealed end to end with the file's own key
// (loginapi.StoreChunk of plaintext plus loginapi.StoreChunkOverhead each),
// in the database, within Config.MaxStoredFile per file (413) and
// Config.FileQuotaPerUser per owner (507); the janitor deletes them
// Config.FileFetchedGrace after every recipient took them (each
// recipient's devices can all fetch them meanwhile), or
// Config.FileStoreTTL after their creation.
//
// GET /healthz → {"ok":true}. Other paths under /api/ are 404 JSON; every
// other path goes to Config.Web (404 JSON when nil).
//
// # Serving
//
// Serve [Server.Handler] with the http.Server from [Server.HTTPServer]
// (read, write, idle and header timeouts from Config) on a listener wrapped
// by [Server.LimitListener] (at most MaxConnsPerAddr connections per client
// address; package internal/connlimit).
//
// # Storage and keys
//
// SQLite (modernc.org/sqlite, no cgo) in WAL mode with foreign keys and a
// busy timeout; the schema is versioned in table schema_version and migrated
// at start. Tables: users(name, pass_hash, created_at),
// refresh_tokens(token_hash = SHA-256 of the token, user_name, expires_at),
// supernodes(addr, last_seen, node_key, hb_ts, verified_at) (schema version
// 2 dropped the unverified entries of version 1). Passwords are stored as
// argon2id PHC strings ($argon2id$v=19$m=19456,t=2,p=1$salt$hash);
// verification reads the
// parameters from the string, and a hash with old parameters is replaced at
// the next successful login. The Ed25519 signing key is the raw 32-byte seed
// in DataDir/login-key (mode 0600), made on first start. A janitor goroutine
// prunes expired refresh tokens, stale supernodes and old failure counts
// every minute; [Server.Close] stops it and waits.
//
// Schema version 3 added users.status and the tables devices, mailbox and
// contacts; the janitor also deletes mailbox items older than MailboxTTL.
// Version 4 binds refresh tokens to the device key they were last used with
// and adds devices.registered and revoked_devices: a removed device's key,
// refused by refresh, device registration and every user endpoint (401
// "device removed: …") until a password login with the key clears it.
// Version 5 adds the file store: stored_files, stored_file_recipients and
// stored_chunks; the janitor deletes files older than FileStoreTTL. Version
// 6 marks a recipient's claim taken (stored_file_recipients.fetched_at)
// instead of removing it, so that every device of the recipient can fetch
// the file; the janitor deletes a file FileFetchedGrace after its last
// claim was taken.
//
// The server never logs passwords, password hashes, refresh tokens,
// credentials, private keys, signatures, mailbox blobs, or stored files'
// ids and bytes.
package login
