// Package presence defines the presence statuses every part of Parley speaks:
// the login server stores the one a user sets (PUT /api/v1/status), the
// supernodes push it to watchers, and clients and the page show it. It imports
// nothing of the project.
package presence

// Statuses. A user sets Online, Away, Busy or Invisible; watchers see
// Invisible as Offline, and Offline when no device of the user is attached.
const (
	Online    = "online"
	Away      = "away"
	Busy      = "busy"
	Invisible = "invisible"
	Offline   = "offline"
)

// Settable returns the statuses a user may set, in the order they are offered.
func Settable() []string { return []string{Online, Away, Busy, Invisible} }

// CanSet reports whether a user may set status.
func CanSet(status string) bool {
	switch status {
	case Online, Away, Busy, Invisible:
		return true
	}
	return false
}

// Shown is status as others see it: Invisible shows as Offline.
func Shown(status string) string {
	if status == Invisible {
		return Offline
	}
	return status
}
