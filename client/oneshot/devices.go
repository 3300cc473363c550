package oneshot

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/wire/loginapi"
)

// MinDeviceKeyPrefix is the fewest characters of a device's key (as
// loginapi.DeviceKeyString writes it) that [RemoveDevice] takes.
const MinDeviceKeyPrefix = 8

// Login logs user in with password, registering the account first when
// register is set: `parley register USER` and `parley login USER`.
func Login(ctx context.Context, c *client.Client, user, password string, register bool) error {
	if register {
		if err := c.Register(ctx, user, password); err != nil {
			return err
		}
	}
	return c.Login(ctx, user, password)
}

// CheckDeviceKey checks KEY arguments before anything is asked: each must be
// MinDeviceKeyPrefix to 43 characters of base64url (A-Z a-z 0-9 - _), the
// start of a device's key.
func CheckDeviceKey(keys ...string) error {
	full := base64.RawURLEncoding.EncodedLen(32)
	for _, k := range keys {
		if len(k) < MinDeviceKeyPrefix || len(k) > full || strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("KEY %q: give %d to %d characters of the device's key as parley devices shows it (base64url)",
				loginapi.Sanitize(k), MinDeviceKeyPrefix, full)
		}
	}
	return nil
}

// MatchDevice returns the device of list whose key, as
// loginapi.DeviceKeyString writes it, starts with prefix: an error wrapping
// loginapi.ErrUnknownDevice when none does, ErrAmbiguousDevice when several
// do.
func MatchDevice(list []loginapi.MyDevice, prefix string) (loginapi.MyDevice, error) {
	var found []loginapi.MyDevice
	for _, d := range list {
		if strings.HasPrefix(loginapi.DeviceKeyString(d.Key), prefix) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return loginapi.MyDevice{}, fmt.Errorf("device %s: %w: none of your %d devices has a key starting with it", prefix, loginapi.ErrUnknownDevice, len(list))
	}
	return loginapi.MyDevice{}, fmt.Errorf("device %s: %w: %d of your devices have keys starting with it; give more of the key", prefix, ErrAmbiguousDevice, len(found))
}

// RemoveDevice removes the user's device whose key starts with prefix (see
// [MatchDevice]) and returns it. The device gets no more messages, its
// mailbox is emptied and the login server refuses it until a password login
// on it. This device itself is removed only when self is set (else
// ErrThisDevice): it is logged out then.
func RemoveDevice(ctx context.Context, c *client.Client, prefix string, self bool) (loginapi.MyDevice, error) {
	if err := CheckDeviceKey(prefix); err != nil {
		return loginapi.MyDevice{}, err
	}
	list, err := c.Devices(ctx)
	if err != nil {
		return loginapi.MyDevice{}, err
	}
	d, err := MatchDevice(list, prefix)
	if err != nil {
		return d, fmt.Errorf("remove %w", err)
	}
	if d.Self && !self {
		return d, fmt.Errorf("remove device %s: %w: it would be logged out until a password login on it (parley devices remove --self)", prefix, ErrThisDevice)
	}
	return d, c.RemoveDevice(ctx, d.Key)
}
