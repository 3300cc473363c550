package login

// LoginResponse is the answer to login and refresh.
type LoginResponse struct {
	// User is the account name.
	User string `json:"user"`
	// Credential is the signed credential token (see package identity).
	Credential string `json:"credential"`
	// Expires is the end of the credential's validity, Unix seconds.
	Expires int64 `json:"expires"`
	// RefreshToken renews the credential without the password (see
	// [Client.Refresh]). It is a secret: store it like a password.
	RefreshToken string `json:"refresh_token"`
	// RefreshExpires is the end of the refresh token's validity, Unix
	// seconds; each refresh moves it forward.
	RefreshExpires int64 `json:"refresh_expires"`
	// LoginKey is the login server's Ed25519 public key (on the wire: base64,
	// standard alphabet, padded).
	LoginKey []byte `json:"login_key"`
	// Supernodes are the live supernodes, freshest first.
	Supernodes []SupernodeInfo `json:"supernodes"`
}

// SupernodeInfo is one entry of the supernode bootstrap list.
type SupernodeInfo struct {
	// Addr is the supernode's websocket URL, ws:// or wss://.
	Addr string `json:"addr"`
	// LastSeen is the time of its last heartbeat, Unix seconds.
	LastSeen int64 `json:"last_seen"`
}

type registerRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type loginRequest struct {
	User      string `json:"user"`
	Password  string `json:"password"`
	PublicKey string `json:"public_key"`
}

type refreshRequest struct {
	User         string `json:"user"`
	RefreshToken string `json:"refresh_token"`
	PublicKey    string `json:"public_key"`
}

type passwordRequest struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	NewPassword string `json:"new_password"`
}

type heartbeatRequest struct {
	Addr string `json:"addr"`
}

type userResponse struct {
	User string `json:"user"`
}

type keyResponse struct {
	Alg       string `json:"alg"`
	PublicKey []byte `json:"public_key"`
}

type heartbeatResponse struct {
	TTL int64 `json:"ttl"`
}

type supernodesResponse struct {
	Supernodes []SupernodeInfo `json:"supernodes"`
}

type errorResponse struct {
	Error      string `json:"error"`
	RetryAfter int64  `json:"retry_after,omitempty"`
}
