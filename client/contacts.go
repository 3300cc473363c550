package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

// Contacts, presence status and user search: thin wrappers over the login
// server's user endpoints (docs/login.md) that bring their own credential.
// Errors are wrapped with the operation and keep the login sentinels
// (loginapi.ErrUnknownUser, loginapi.ErrNoRequest, loginapi.ErrQuota,
// loginapi.ErrRateLimited, ...), so errors.Is works.

// Presence values of a contact, as [Client.ContactsWithPresence] reports them:
// the stored statuses (presence.Online, StatusAway, StatusBusy) and
// presence.Offline, plus PresenceUnknown when the mesh could not be asked.
const PresenceUnknown = "unknown"

// ContactPresence is one entry of the contact list with live presence.
type ContactPresence struct {
	// User is the contact's name.
	User string `json:"user"`
	// State is loginapi.ContactAccepted, ContactRequested or ContactPending.
	State string `json:"state"`
	// Presence is, for accepted contacts, online, away, busy or offline
	// (or PresenceUnknown); empty for requests.
	Presence string `json:"presence,omitempty"`
}

// withCred gets a valid credential and a login client for op.
func (c *Client) withCred(ctx context.Context) (*loginapi.Client, string, error) {
	cred, err := c.Credential(ctx)
	if err != nil {
		return nil, "", err
	}
	lc, err := c.loginClient()
	if err != nil {
		return nil, "", err
	}
	return lc, cred, nil
}

// Contacts lists the user's contacts by name: accepted ones with their stored
// status (invisible contacts appear offline), requests the user made
// (loginapi.ContactRequested) and requests waiting for them (loginapi.ContactPending).
func (c *Client) Contacts(ctx context.Context) ([]loginapi.Contact, error) {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: contacts: %w", err)
	}
	list, err := lc.Contacts(ctx, cred)
	if err != nil {
		return nil, fmt.Errorf("client: contacts: %w", err)
	}
	return list, nil
}

// AddContact asks user to become a contact, or accepts when user already
// asked; it returns the new state (loginapi.ContactRequested or
// loginapi.ContactAccepted).
func (c *Client) AddContact(ctx context.Context, user string) (string, error) {
	return c.contactOp(ctx, "add contact", user, (*loginapi.Client).RequestContact)
}

// AcceptContact accepts user's pending request (loginapi.ErrNoRequest when
// there is none) and returns loginapi.ContactAccepted.
func (c *Client) AcceptContact(ctx context.Context, user string) (string, error) {
	return c.contactOp(ctx, "accept contact", user, (*loginapi.Client).AcceptContact)
}

// DeclineContact ends any relation with user on both sides (declines their
// request, withdraws ours, or removes an accepted contact) and returns
// loginapi.ContactNone.
func (c *Client) DeclineContact(ctx context.Context, user string) (string, error) {
	return c.contactOp(ctx, "decline contact", user, (*loginapi.Client).DeclineContact)
}

func (c *Client) contactOp(ctx context.Context, op, user string, f func(*loginapi.Client, context.Context, string, string) (string, error)) (string, error) {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return "", fmt.Errorf("client: %s %s: %w", op, user, err)
	}
	state, err := f(lc, ctx, cred, user)
	if err != nil {
		return "", fmt.Errorf("client: %s %s: %w", op, user, err)
	}
	return state, nil
}

// SetStatus stores the user's status for all their devices:
// presence.Online, StatusAway, StatusBusy or StatusInvisible (contacts see
// invisible as offline).
func (c *Client) SetStatus(ctx context.Context, status string) error {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return fmt.Errorf("client: set status: %w", err)
	}
	if err := lc.SetStatus(ctx, cred, status); err != nil {
		return fmt.Errorf("client: set status: %w", err)
	}
	return nil
}

// Status returns the user's stored status (online until set).
func (c *Client) Status(ctx context.Context) (string, error) {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return "", fmt.Errorf("client: status: %w", err)
	}
	st, err := lc.Status(ctx, cred)
	if err != nil {
		return "", fmt.Errorf("client: status: %w", err)
	}
	return st, nil
}

// Search lists up to limit (1–loginapi.MaxSearchResults; 0 means the maximum)
// user names starting with prefix, in byte order.
func (c *Client) Search(ctx context.Context, prefix string, limit int) ([]string, error) {
	lc, cred, err := c.withCred(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: search %s: %w", prefix, err)
	}
	users, err := lc.Search(ctx, cred, prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("client: search %s: %w", prefix, err)
	}
	return users, nil
}

// ContactsWithPresence is [Client.Contacts] with each accepted contact's
// presence: offline when the mesh knows no device of theirs (whatever they
// set) or when they are invisible, else their stored status (default online).
// Requests carry their state and no presence. With a nil session, or when a
// lookup fails, an accepted contact's presence is PresenceUnknown unless
// their stored status already says offline.
func (c *Client) ContactsWithPresence(ctx context.Context, s *Session) ([]ContactPresence, error) {
	list, err := c.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ContactPresence, len(list))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, ct := range list {
		out[i] = ContactPresence{User: ct.User, State: ct.State}
		if ct.State != loginapi.ContactAccepted {
			continue
		}
		stored := ct.Status
		if stored == "" {
			stored = presence.Online
		}
		if stored == presence.Offline || stored == presence.Invisible {
			out[i].Presence = presence.Offline
			continue
		}
		if s == nil {
			out[i].Presence = PresenceUnknown
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := s.Lookup(ctx, ct.User)
			switch {
			case err != nil:
				c.log.Warn("presence lookup failed", "user", ct.User, "err", err)
				out[i].Presence = PresenceUnknown
			case f.Devices == 0:
				out[i].Presence = presence.Offline
			default:
				out[i].Presence = stored
			}
		}()
	}
	wg.Wait()
	return out, nil
}
