package client

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/parley/parley/wire/loginapi"
)

// The user's own devices: thin wrappers over the login server's GET
// /api/v1/devices and DELETE /api/v1/devices/{key} (docs/login.md) that
// bring their own credential. Errors keep the login sentinels
// (loginapi.ErrUnknownDevice, loginapi.ErrDeviceRemoved, ...).

// Devices lists the user's devices as the login server knows them, most
// recently seen first: this one has Self set; Encryption says whether
// messages are sealed to a device (it registered its X25519 key).
func (c *Client) Devices(ctx context.Context) ([]loginapi.MyDevice, error) {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: devices: %w", err)
	}
	list, err := lc.MyDevices(ctx, cred)
	if err != nil {
		return nil, fmt.Errorf("client: devices: %w", err)
	}
	return list, nil
}

// RemoveDevice removes one of the user's devices (this one included) from
// the account: it gets no more messages, its mailbox is emptied, and the
// login server refuses to renew its credential or to serve it until the
// user logs in with the password on it. loginapi.ErrUnknownDevice when the
// user has no device with key.
func (c *Client) RemoveDevice(ctx context.Context, key ed25519.PublicKey) error {
	lc, cred, err := c.withCred(ctx)
	if err == nil {
		err = lc.RemoveDevice(ctx, cred, key)
	}
	if err != nil {
		name := loginapi.DeviceKeyString(key)
		return fmt.Errorf("client: remove device %s: %w", name[:min(len(name), 12)], err)
	}
	return nil
}
