package client

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/signal"
)

// Conference calls (docs/conference.md): a full mesh of ordinary calls
// ("legs"), one between this device and every other participating device.
// This device sends its own voice on every leg (encoded once) and mixes what
// the legs bring (conf_media.go); nobody hosts, so a participant that dies
// takes only its own legs. The signals are wire/signal's KindConf and a leg's
// offer carrying Conf (conf_signal.go).

// ConfInviteWait is how long a member waits, for an offer of a leg from a
// user it has not heard was invited, for the inviter's "invited" notice (it
// may come after the invitee's offer) before it refuses the leg.
const ConfInviteWait = 3 * time.Second

// Reasons a conference's legs end with or are refused with.
const (
	ConfLeft       = "left the conference"
	ConfNotInvited = "refused: not invited to this conference"
	// ConfJoinedElsewhere is the reason an invitation stops ringing when
	// another device of the user joined.
	ConfJoinedElsewhere = "joined on another device"
)

// confFull is the reason a leg is refused when the conference is full.
func confFull() string {
	return fmt.Sprintf("refused: conference full (%d of %d)", signal.MaxConfMembers, signal.MaxConfMembers)
}

// ConfConfig starts a conference.
type ConfConfig struct {
	// Group invites every other member of a group (a name or id, as
	// Session.Group takes).
	Group string
	// Users invites these users (with Group: as well).
	Users []string
	// Media is what this device says (Source, read once for every leg) and
	// where the mix of what the others say goes (Sink). OnSourceEnd is
	// called once at the end of the source.
	Media Media
}

// ConfEvent is the payload of a "conference" event.
type ConfEvent struct {
	// ConfState: invited (ConfFrom, ConfGroup, Roster: the inviter's),
	// joined, roster (Roster changed), declined (ConfFrom declined an
	// invitation), left (ConfReason).
	ConfState  string       `json:"conf_state"`
	ConfFrom   string       `json:"conf_from,omitempty"`
	ConfGroup  string       `json:"conf_group,omitempty"`
	ConfReason string       `json:"conf_reason,omitempty"`
	Roster     []ConfMember `json:"roster,omitempty"`
}

// ConfMember is one participant in a roster.
type ConfMember struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Self     bool   `json:"self,omitempty"`
	Speaking bool   `json:"speaking,omitempty"`
	Muted    bool   `json:"muted,omitempty"`
	Path     string `json:"path,omitempty"` // the leg's path (direct, udp-relay, tcp-relay)
}

// Conference is this device's part in a conference call. Its goroutines
// end with it; Done is closed after they have.
type Conference struct {
	ID string

	s     *Session
	media Media
	bc    *broadcaster
	enc   *sharedEncoder
	mix   *mixer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	mu         sync.Mutex
	group      string
	legs       map[string]*confLeg // by "user/device"
	invited    map[string]bool     // users who may dial in
	inviteWake chan struct{}       // closed (and replaced) when invited grows
	hadLeg     bool                // a leg has connected
	muted      bool
	held       bool
	ending     bool
	reason     string
	lastErr    error  // why the last leg this device placed failed
	shown      string // the roster last reported
	ticks      int
}

// confLeg is one leg: a call with another participating device.
type confLeg struct {
	key, user, device string
	outgoing          bool
	cancel            context.CancelFunc // stops an outgoing leg while it rings
	call              *Call              // nil until connected
	tap               *confTap
	in                *mixInput
	peerMuted         bool
}

func newConfID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newConference makes this device's conference id and starts its audio.
func (s *Session) newConference(id, group string, media Media) (*Conference, error) {
	enc, err := newSharedEncoder()
	if err != nil {
		return nil, fmt.Errorf("client: conference: %w", err)
	}
	cf := &Conference{
		ID: id, s: s, media: media, bc: newBroadcaster(media.Source), enc: enc, mix: newMixer(media.Sink),
		done: make(chan struct{}), group: group, legs: map[string]*confLeg{}, invited: map[string]bool{},
		inviteWake: make(chan struct{}),
	}
	cf.ctx, cf.cancel = context.WithCancel(s.ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.confs[id] != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("client: conference %s: already in it", id)
	}
	s.confs[id] = cf
	s.mu.Unlock()
	cf.goOwned(func() { cf.bc.run(cf.ctx, media.OnSourceEnd) })
	cf.goOwned(func() { cf.mix.run(cf.ctx, cf.tick) })
	return cf, nil
}

func (s *Session) conference(id string) *Conference {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confs[id]
}

// StartConference starts a conference and invites cfg's users and group. It
// returns at once: the invited join as they answer (Roster, "conference"
// events). Nobody joining within the ring timeout ends it ("no answer").
func (s *Session) StartConference(ctx context.Context, cfg ConfConfig) (*Conference, error) {
	users := slices.Clone(cfg.Users)
	group := ""
	if cfg.Group != "" {
		g, err := s.Group(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("client: conference: %w", err)
		}
		group = g.Name
		users = append(users, g.Members...)
	}
	users = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(users))), func(u string) bool { return u == s.user })
	if len(users) == 0 {
		return nil, fmt.Errorf("client: conference: nobody to invite")
	}
	for _, u := range users {
		if err := identity.CheckUser(u); err != nil {
			return nil, fmt.Errorf("client: conference: %w", err)
		}
	}
	cf, err := s.newConference(newConfID(), strings.ReplaceAll(group, " ", "_"), cfg.Media)
	if err != nil {
		return nil, err
	}
	s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "joined", ConfGroup: cf.group, Roster: cf.Roster()}})
	if err := cf.Invite(ctx, users...); err != nil {
		cf.Leave()
		return nil, err
	}
	cf.goOwned(func() {
		t := time.NewTimer(s.cfg.RingTimeout)
		defer t.Stop()
		select {
		case <-cf.ctx.Done():
		case <-t.C:
			cf.mu.Lock()
			alone := !cf.hadLeg && len(cf.legs) == 0
			cf.mu.Unlock()
			if alone {
				cf.end("no answer")
			}
		}
	})
	return cf, nil
}

// Invite invites users: their devices ring, and the members hear that they
// may dial in.
func (cf *Conference) Invite(ctx context.Context, users ...string) error {
	for _, u := range users {
		if err := identity.CheckUser(u); err != nil {
			return fmt.Errorf("client: invite: %w", err)
		}
	}
	members := cf.members()
	cf.mu.Lock()
	if len(members) >= signal.MaxConfMembers {
		cf.mu.Unlock()
		return fmt.Errorf("client: conference: %s", strings.TrimPrefix(confFull(), "refused: "))
	}
	for _, u := range users {
		cf.invited[u] = true
	}
	close(cf.inviteWake)
	cf.inviteWake = make(chan struct{})
	group := cf.group
	cf.mu.Unlock()
	invited := cf.invitedUsers()
	var errs []error
	for _, u := range users {
		sig := &signal.Signal{Kind: signal.KindConf, CallID: newCallID(), To: u,
			Conf: &signal.Conf{ID: cf.ID, Op: signal.ConfInvite, Group: group, Members: members, Users: invited}}
		if err := cf.s.sendSignal(ctx, sig); err != nil {
			errs = append(errs, fmt.Errorf("client: invite %s: %w", u, err))
		}
	}
	for i := 0; i < len(users); i += signal.MaxConfMembers {
		cf.tellMembers(&signal.Conf{ID: cf.ID, Op: signal.ConfInvited, Users: users[i:min(len(users), i+signal.MaxConfMembers)]})
	}
	if len(errs) == len(users) {
		return errors.Join(errs...)
	}
	return nil
}

// invitedUsers lists the users invited so far (at most MaxConfMembers, the
// most recent kept): an invitation and a roster carry them, so that a
// newcomer accepts the legs of those invited with it.
func (cf *Conference) invitedUsers() []string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	users := slices.Sorted(maps.Keys(cf.invited))
	return users[max(0, len(users)-signal.MaxConfMembers):]
}

// tellMembers sends c to every member's user (once per user), in the
// background.
func (cf *Conference) tellMembers(c *signal.Conf) {
	cf.mu.Lock()
	users := map[string]bool{}
	for _, l := range cf.legs {
		if l.call != nil {
			users[l.user] = true
		}
	}
	cf.mu.Unlock()
	for u := range users {
		cp := *c
		cf.s.sendAsync(&signal.Signal{Kind: signal.KindConf, CallID: newCallID(), To: u, Conf: &cp})
	}
}

// self is this device's member name.
func (cf *Conference) self() string { return signal.Member(cf.s.user, cf.s.device) }

// members is this device and every device it has a connected leg with,
// itself first.
func (cf *Conference) members() []string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	out := []string{cf.self()}
	for _, k := range slices.Sorted(maps.Keys(cf.legs)) {
		if cf.legs[k].call != nil {
			out = append(out, k)
		}
	}
	return out
}

// Roster is this device and the devices it has a connected leg with.
func (cf *Conference) Roster() []ConfMember {
	now := time.Now()
	cf.mu.Lock()
	defer cf.mu.Unlock()
	out := []ConfMember{{User: cf.s.user, Device: cf.s.device, Self: true, Muted: cf.muted}}
	for _, k := range slices.Sorted(maps.Keys(cf.legs)) {
		l := cf.legs[k]
		if l.call == nil {
			continue
		}
		p, _ := l.call.path.Load().(string)
		out = append(out, ConfMember{User: l.user, Device: l.device, Speaking: l.in.speaking(now), Muted: l.peerMuted, Path: p})
	}
	return out
}

// tick runs after every mixed frame: every 100 ms it reports the roster if it
// changed.
func (cf *Conference) tick() {
	cf.mu.Lock()
	cf.ticks++
	due := cf.ticks%5 == 0
	cf.mu.Unlock()
	if due {
		cf.showRoster()
	}
}

func (cf *Conference) showRoster() {
	r := cf.Roster()
	key := fmt.Sprint(r)
	cf.mu.Lock()
	changed := key != cf.shown && !cf.ending
	cf.shown = key
	cf.mu.Unlock()
	if changed {
		cf.s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "roster", Roster: r}})
	}
}

// SetMuted mutes (or unmutes) this device: silence goes on every leg, and the
// others' rosters show it.
func (cf *Conference) SetMuted(m bool) {
	cf.mu.Lock()
	was := cf.muted
	cf.muted = m
	cf.mu.Unlock()
	cf.bc.set(&m, nil)
	if was != m {
		op := signal.ConfUnmute
		if m {
			op = signal.ConfMute
		}
		cf.tellMembers(&signal.Conf{ID: cf.ID, Op: op})
	}
}

// Hold puts every leg on hold (heartbeats keep each path open, as in a 1:1
// call), or resumes them.
func (cf *Conference) Hold(on bool) {
	cf.mu.Lock()
	cf.held = on
	var calls []*Call
	for _, l := range cf.legs {
		if l.call != nil {
			calls = append(calls, l.call)
		}
	}
	cf.mu.Unlock()
	cf.bc.set(nil, &on)
	for _, c := range calls {
		c.Hold(on)
	}
}

// Leave hangs up every leg and ends this device's part. It does not wait:
// use Done.
func (cf *Conference) Leave() { cf.end(ConfLeft) }

// Done is closed once this device is out of the conference and its
// goroutines have ended.
func (cf *Conference) Done() <-chan struct{} { return cf.done }

// Reason says why this device's part ended (after Done).
func (cf *Conference) Reason() string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	return cf.reason
}

func (cf *Conference) goOwned(f func()) bool {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if cf.ending {
		return false
	}
	cf.wg.Add(1)
	go func() {
		defer cf.wg.Done()
		f()
	}()
	return true
}

// end ends this device's part once; it never blocks.
func (cf *Conference) end(reason string) {
	cf.mu.Lock()
	if cf.ending {
		cf.mu.Unlock()
		return
	}
	cf.ending, cf.reason = true, reason
	var calls []*Call
	for _, l := range cf.legs {
		if l.call != nil {
			calls = append(calls, l.call)
		}
	}
	cf.mu.Unlock()
	cf.cancel()
	s := cf.s
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, c := range calls {
			c.Hangup(ConfLeft)
		}
		for _, c := range calls {
			<-c.Done()
		}
		cf.wg.Wait()
		cf.bc.closeAll()
		s.mu.Lock()
		delete(s.confs, cf.ID)
		for id, conf := range s.legConf {
			if conf == cf.ID {
				delete(s.legConf, id)
			}
		}
		s.mu.Unlock()
		s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "left", ConfReason: reason}})
		close(cf.done)
	}()
}

// legMedia is what a leg says and where what it hears goes.
func (cf *Conference) legMedia(l *confLeg) Media {
	l.tap, l.in = cf.bc.tap(), cf.mix.input()
	return Media{Source: l.tap, Sink: l.in, Encoder: cf.enc}
}

// adopt makes a connected 1:1 call with peerDevice this conference's leg:
// it sends the conference's voice and its sound joins the mix from now on.
func (cf *Conference) adopt(c *Call, peerDevice string) {
	l := &confLeg{key: signal.Member(c.Peer, peerDevice), user: c.Peer, device: peerDevice}
	m := cf.legMedia(l)
	c.redirect.Store(&m)
	cf.s.mu.Lock()
	cf.s.legConf[c.ID] = cf.ID
	cf.s.mu.Unlock()
	cf.mu.Lock()
	cf.legs[l.key] = l
	cf.mu.Unlock()
	cf.connected(l, c)
}

// dropLeg forgets l (if it is still the leg of its key) and, once the
// conference has had a leg and has none left, ends it.
func (cf *Conference) dropLeg(l *confLeg) {
	if l.tap != nil {
		cf.bc.drop(l.tap)
	}
	if l.in != nil {
		cf.mix.drop(l.in)
	}
	cf.mu.Lock()
	if cf.legs[l.key] == l {
		delete(cf.legs, l.key)
	}
	empty := cf.hadLeg && len(cf.legs) == 0
	cf.mu.Unlock()
	cf.showRoster()
	if empty {
		cf.end("everyone left")
	}
}

// connected records that l's call connected, and watches it until it ends.
func (cf *Conference) connected(l *confLeg, c *Call) {
	cf.mu.Lock()
	l.call = c
	cf.hadLeg = true
	held, ending := cf.held, cf.ending
	cf.mu.Unlock()
	if ending {
		c.Hangup(ConfLeft)
	} else if held {
		c.Hold(true)
	}
	cf.showRoster()
	if !cf.goOwned(func() {
		select {
		case <-c.Done():
		case <-cf.ctx.Done():
			return // end hangs up and waits
		}
		cf.dropLeg(l)
	}) {
		c.Hangup(ConfLeft)
	}
}

// dial places a leg to a member device, unless it has one or is dialling it.
func (cf *Conference) dial(member string) {
	user, device, ok := signal.SplitMember(member)
	if !ok || member == cf.self() || identity.CheckUser(user) != nil {
		return
	}
	l := &confLeg{key: member, user: user, device: device, outgoing: true}
	cf.mu.Lock()
	if cf.legs[member] != nil || cf.ending || len(cf.legs) >= signal.MaxConfMembers-1 {
		cf.mu.Unlock()
		return
	}
	cf.legs[member] = l
	ctx, cancel := context.WithCancel(cf.ctx)
	l.cancel = cancel
	cf.mu.Unlock()
	cf.goOwned(func() {
		defer cancel()
		c, err := cf.s.place(ctx, user, cf.legMedia(l), &legTarget{conf: cf.ID, device: device})
		if err != nil {
			cf.mu.Lock()
			if !strings.Contains(err.Error(), signal.ConfGlare) && ctx.Err() == nil {
				cf.lastErr = err
			}
			cf.mu.Unlock()
			cf.dropLeg(l)
			return
		}
		cf.connected(l, c)
	})
}

// mayJoin reports whether user may have a leg: a member already, or invited.
// Called with cf.mu held.
func (cf *Conference) mayJoin(user string) bool {
	if cf.invited[user] || user == cf.s.user {
		return true
	}
	for _, l := range cf.legs {
		if l.user == user && l.call != nil {
			return true
		}
	}
	return false
}

// accept answers (or refuses) an offered leg: see docs/conference.md.
func (cf *Conference) accept(in *Incoming) {
	s := cf.s
	defer func() {
		s.mu.Lock()
		delete(s.incoming, in.CallID)
		s.mu.Unlock()
		in.cancel()
	}()
	key := signal.Member(in.Peer, in.offer.Device)
	wait := time.NewTimer(ConfInviteWait)
	defer wait.Stop()
	for {
		cf.mu.Lock()
		ok, wake := cf.mayJoin(in.Peer), cf.inviteWake
		cf.mu.Unlock()
		if ok {
			break
		}
		select {
		case <-wake:
			continue
		case <-wait.C:
		case <-cf.ctx.Done():
		}
		in.Decline(ConfNotInvited)
		return
	}
	l := &confLeg{key: key, user: in.Peer, device: in.offer.Device}
	cf.mu.Lock()
	old := cf.legs[key]
	switch {
	case old != nil && old.outgoing && old.call == nil && cf.self() < key:
		// Glare: both offered; mine wins.
		cf.mu.Unlock()
		in.Decline(signal.ConfGlare)
		return
	case old == nil && len(cf.legs) >= signal.MaxConfMembers-1:
		cf.mu.Unlock()
		in.Decline(confFull())
		return
	}
	cf.legs[key] = l // a ringing leg of mine, or an old leg of a restarted device, gives way
	cf.mu.Unlock()
	if old != nil {
		if old.cancel != nil {
			old.cancel()
		}
		if old.call != nil {
			old.call.Hangup("replaced")
		}
	}
	c, err := in.Answer(cf.ctx, cf.legMedia(l))
	if err != nil {
		cf.dropLeg(l)
		return
	}
	cf.connected(l, c)
	// The newcomer dials every member it has no leg with.
	s.sendAsync(&signal.Signal{Kind: signal.KindConf, CallID: newCallID(), To: in.Peer,
		Conf: &signal.Conf{ID: cf.ID, Op: signal.ConfRoster, Members: cf.members(), Users: cf.invitedUsers()}})
}

// Hangup leaves the conference (as Leave; the reason is for the roster's
// events). With Hold, Done, Err and Stats it lets a conference be driven like
// a call (package callscript).
func (cf *Conference) Hangup(reason string) { cf.end(cmp.Or(reason, ConfLeft)) }

// Err is why this device's part failed (nobody joined: ErrNoAnswer), nil when
// it was left or everyone else left; it waits for Done.
func (cf *Conference) Err() error {
	<-cf.done
	if cf.Reason() == "no answer" {
		return fmt.Errorf("client: conference: %w", ErrNoAnswer)
	}
	return nil
}

// Stats sums what the legs sent and received; PacketsSent is the least any
// leg has sent and RTTMS the longest round trip, so that a wait for the last
// frames to reach the peer (callscript) waits for every leg.
func (cf *Conference) Stats() Stats {
	cf.mu.Lock()
	var calls []*Call
	for _, l := range cf.legs {
		if l.call != nil {
			calls = append(calls, l.call)
		}
	}
	cf.mu.Unlock()
	var out Stats
	for i, c := range calls {
		st := c.Stats()
		if i == 0 || st.PacketsSent < out.PacketsSent {
			out.PacketsSent = st.PacketsSent
		}
		out.PacketsReceived += st.PacketsReceived
		out.BytesReceived += st.BytesReceived
		out.BytesSent += st.BytesSent
		out.RTTMS = max(out.RTTMS, st.RTTMS)
	}
	return out
}
