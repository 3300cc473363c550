package main

import (
	"context"
	"flag"

	"github.com/parley/parley/client/oneshot"
)

// cmdDevices is `parley devices`, the user's devices, and `parley devices remove KEY [--self]`.
func cmdDevices(ctx context.Context, e *env, args []string) error {
	rm := len(args) > 0 && args[0] == "remove"
	fs := flag.NewFlagSet(map[bool]string{false: "devices", true: "devices remove"}[rm], flag.ContinueOnError)
	jsonOut, self, n := fs.Bool("json", false, map[bool]string{false: `print {"key","registered","last_seen","encryption","self"} per device`,
		true: `print {"event":"result","cmd":"devices remove","key","self"}`}[rm]), new(bool), 0
	if rm {
		self, n, args = fs.Bool("self", false, "KEY may be this device: it is then logged out until a password login on it"), 1, args[1:]
	}
	pos, err := parseFlags(fs, e, args, n, n, map[bool]string{false: "[remove KEY [--self]]", true: "KEY"}[rm])
	if err != nil {
		return err
	} else if err := oneshot.CheckDeviceKey(pos...); err != nil {
		return usageError{"devices remove: " + err.Error()}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	if !rm {
		list, err := c.Devices(ctx)
		e.printer(*jsonOut).Devices(list)
		return err
	}
	d, err := oneshot.RemoveDevice(ctx, c, pos[0], *self)
	if err == nil {
		e.printer(*jsonOut).DeviceRemoved(d)
	}
	return err
}
