package loginapi

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"

	"github.com/parley/parley/internal/identity"
)

// The device endpoints of the login server's API: registering this
// device, listing and removing the user's own devices, reading another
// user's devices.

// PutDevice registers the device whose key is in cred (the Ed25519 key the
// credential names) with its X25519 public key x25519Pub for end-to-end
// encryption. sig is identity.SignContext(device key, DeviceContext,
// DeviceMessage(user, device key, x25519Pub)); see [SignDevice]. Registering
// again replaces the X25519 key. A user keeps Config.MaxDevicesPerUser
// devices; the least recently seen is dropped, with its mailbox, when one
// more registers. Errors: ErrUnauthorized, ErrBadRequest (with
// ErrBadSignature for a signature that does not verify), ErrUnreachable,
// ErrServer.
func (c *Client) PutDevice(ctx context.Context, cred string, x25519Pub, sig []byte) (*Device, error) {
	if err := checkCred("put device", cred); err != nil {
		return nil, err
	}
	if len(x25519Pub) != X25519KeySize || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("login: put device: x25519 key is %d bytes, signature %d: %w", len(x25519Pub), len(sig), ErrBadRequest)
	}
	var out Device
	req := DeviceRequest{X25519: base64.StdEncoding.EncodeToString(x25519Pub), Sig: base64.StdEncoding.EncodeToString(sig)}
	if err := c.doAuth(ctx, cred, http.MethodPut, "/api/v1/devices/self", req, &out, userKinds()); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignDevice returns the signature [Client.PutDevice] needs: devicePriv is
// the private key of the credential's public key.
func SignDevice(devicePriv ed25519.PrivateKey, user string, x25519Pub []byte) []byte {
	pub := devicePriv.Public().(ed25519.PublicKey)
	return identity.SignContext(devicePriv, DeviceContext, DeviceMessage(user, pub, x25519Pub))
}

// DeleteDevice unregisters the device of cred and drops its mailbox. It
// reports whether the device was registered.
func (c *Client) DeleteDevice(ctx context.Context, cred string) (bool, error) {
	if err := checkCred("delete device", cred); err != nil {
		return false, err
	}
	var out RemovedResponse
	if err := c.doAuth(ctx, cred, http.MethodDelete, "/api/v1/devices/self", nil, &out, userKinds()); err != nil {
		return false, err
	}
	return out.Removed > 0, nil
}

// MyDevices lists the caller's own devices, most recently seen first, the
// caller's marked Self: those with a refresh token and those that
// registered an X25519 key ([MyDevice]). Errors: ErrUnauthorized
// (ErrDeviceRemoved when the caller's device was removed), ErrUnreachable,
// ErrServer.
func (c *Client) MyDevices(ctx context.Context, cred string) ([]MyDevice, error) {
	if err := checkCred("my devices", cred); err != nil {
		return nil, err
	}
	var out MyDevicesResponse
	if err := c.doAuth(ctx, cred, http.MethodGet, "/api/v1/devices", nil, &out, userKinds()); err != nil {
		return nil, err
	}
	for i, d := range out.Devices {
		if len(d.Key) != ed25519.PublicKeySize {
			return nil, c.badResponse(fmt.Sprintf("device %d has a %d-byte key", i, len(d.Key)))
		}
	}
	if out.Devices == nil {
		out.Devices = []MyDevice{}
	}
	return out.Devices, nil
}

// RemoveDevice removes one of the caller's devices, the caller's own
// included: its X25519 registration and its mailbox are dropped, and its
// key is revoked: the login server refuses to renew a credential for it and
// refuses the credentials it holds (ErrDeviceRemoved), until the user logs
// in with the password on that device. Credentials already issued still
// verify offline (at supernodes) until they expire. Errors: ErrUnknownDevice
// (no device of the caller's has key: another user's device is unknown
// too), ErrUnauthorized, ErrBadRequest, ErrUnreachable, ErrServer.
func (c *Client) RemoveDevice(ctx context.Context, cred string, key ed25519.PublicKey) error {
	if err := checkCred("remove device", cred); err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("login: remove device: key is %d bytes, want %d: %w", len(key), ed25519.PublicKeySize, ErrBadRequest)
	}
	var out RemovedResponse
	kinds := userKinds()
	kinds[http.StatusNotFound] = ErrUnknownDevice
	return c.doAuth(ctx, cred, http.MethodDelete, "/api/v1/devices/"+DeviceKeyString(key), nil, &out, kinds)
}

// Devices lists the registered devices of user (the caller or an accepted
// contact), most recently seen first. Every entry's signature is checked
// ([Device.Verify]): an entry that does not verify makes the whole answer an
// ErrServer error, since only a misbehaving server can send one. Errors:
// ErrUnauthorized, ErrUnknownUser, ErrNotContact, ErrBadRequest,
// ErrUnreachable, ErrServer.
func (c *Client) Devices(ctx context.Context, cred, user string) ([]Device, error) {
	return c.DevicesWithPass(ctx, cred, user, nil)
}

// DevicesWithPass is [Client.Devices] for a user who may not be the caller's
// contact: a non-nil pass (a [Pass] for user, from a group's membership log)
// is sent in the Parley-Pass header, and the server uses it when user is not
// an accepted contact of the caller. A nil pass is [Client.Devices]. The
// pass is checked first ([Pass.Verify]; ErrBadRequest with ErrBadPass); a
// well-formed pass that does not admit the caller is ErrNotContact.
func (c *Client) DevicesWithPass(ctx context.Context, cred, user string, pass *Pass) ([]Device, error) {
	if err := checkCred("devices", cred); err != nil {
		return nil, err
	}
	var hdr http.Header
	if pass != nil {
		if err := pass.Verify(); err != nil {
			return nil, fmt.Errorf("login: devices: %w: %w", ErrBadRequest, err)
		}
		hdr = http.Header{PassHeader: {pass.Encode()}}
	}
	var out DevicesResponse
	if err := c.doHeader(ctx, cred, hdr, http.MethodGet, "/api/v1/users/"+url.PathEscape(user)+"/devices", nil, &out, userKinds()); err != nil {
		return nil, err
	}
	for i, d := range out.Devices {
		if !d.Verify(user) {
			return nil, c.badResponse(fmt.Sprintf("device %d of %s has a signature that does not verify", i, Sanitize(user)))
		}
	}
	if out.Devices == nil {
		out.Devices = []Device{}
	}
	return out.Devices, nil
}
