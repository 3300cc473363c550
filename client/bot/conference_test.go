package bot

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/testnet"
)

// joiner is a user whose device joins every conference invitation at once,
// and hands over each conference it is in.
type joiner struct {
	s     *client.Session
	confs chan *client.Conference
}

func startJoiner(t *testing.T, ctx context.Context, loginURL, user string) *joiner {
	t.Helper()
	j := &joiner{confs: make(chan *client.Conference, 4)}
	j.s = testnet.Online(t, ctx, loginURL, user, client.SessionConfig{OnConfInvite: func(inv *client.ConfInvite) {
		cf, err := inv.Join(ctx, client.Media{})
		if err != nil {
			t.Errorf("%s: join: %v", user, err)
			return
		}
		j.confs <- cf
		<-cf.Done()
	}})
	return j
}

// conf is the conference the joiner joined next.
func (j *joiner) conf(t *testing.T) *client.Conference {
	t.Helper()
	select {
	case cf := <-j.confs:
		return cf
	case <-time.After(20 * time.Second):
		t.Fatalf("%s joined no conference", j.s.User())
		return nil
	}
}

// rosterOf is a roster as "user" (self marked "*", muted "(muted)"), in order.
func rosterOf(r []client.ConfMember) []string {
	var out []string
	for _, m := range r {
		s := m.User
		if m.Self {
			s += "*"
		}
		if m.Muted {
			s += "(muted)"
		}
		out = append(out, s)
	}
	return out
}

// eventually fails the test unless f's roster becomes want within 10 s.
func eventually(t *testing.T, what string, f func() []client.ConfMember, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := rosterOf(f())
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: roster %v, want %v", what, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resultRoster is the roster of a command's result, as rosterOf says it.
func resultRoster(res map[string]any) []string {
	var out []string
	list, _ := res["roster"].([]any)
	for _, m := range list {
		m, _ := m.(map[string]any)
		s, _ := m["user"].(string)
		if m["self"] == true {
			s += "*"
		}
		if m["muted"] == true {
			s += "(muted)"
		}
		out = append(out, s)
	}
	return out
}

// TestConferenceCommands: a bot starts a conference with alice, invites
// carol into it (inviting an offline user, a bad name or itself are
// errors), sees the three of them in its roster (events and the
// roster command), mutes (the others' rosters show it), holds and resumes,
// and leaves, alice and carol going on together; then it declines dave's
// invitation (dave is told), joins his next one and leaves it while the
// bad commands of each step get their errors.
func TestConferenceCommands(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := startBot(t, loginURL, "bob", Config{})
	alice := startJoiner(t, ctx, loginURL, "alice")
	carol := startJoiner(t, ctx, loginURL, "carol")
	daveEvents := make(chan client.Event, 64)
	dave := testnet.Online(t, ctx, loginURL, "dave", client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "conference" {
			select {
			case daveEvents <- ev:
			default:
			}
		}
	}})

	// Start with alice, invite carol.
	res := h.send(t, `{"cmd":"conference","id":1,"op":"start","users":["alice","bob"]}`)
	id, _ := res["conf"].(string)
	if res["event"] != "result" || len(id) != 32 {
		t.Fatalf("start: %v, want its result with the conference's id", res)
	}
	wantFields(t, "start", res, `{"op":"start","users":["alice"],"id":1}`)
	aliceConf := alice.conf(t)
	if aliceConf.ID != id {
		t.Fatalf("alice joined conference %s, the bot started %s", aliceConf.ID, id)
	}
	wantFields(t, "invite", h.send(t, `{"cmd":"conference","op":"invite","conf":"`+id+`","users":["carol"]}`),
		`{"event":"result","op":"invite","conf":"`+id+`","users":["carol"]}`)
	carolConf := carol.conf(t)
	for _, tt := range []struct{ users, want string }{
		{`["zed"]`, "conference: invite zed: send to zed: user is offline"},
		{`["Bob Smith"]`, `invalid user name: "Bob Smith"`},
		{`["bob"]`, "conference: op invite: nobody to invite"},
	} {
		if got := h.send(t, `{"cmd":"conference","op":"invite","conf":"`+id+`","users":`+tt.users+`}`); got["event"] != "error" ||
			!strings.HasPrefix(fmt.Sprint(got["error"]), "conference: ") || !strings.Contains(fmt.Sprint(got["error"]), tt.want) {
			t.Errorf("invite %s: %v, want an error %q…", tt.users, got, tt.want)
		}
	}
	h.find(t, "a roster of three", func(ev map[string]any) bool {
		r, _ := ev["roster"].([]any)
		return ev["event"] == "conference" && ev["conf"] == id && ev["conf_state"] == "roster" && len(r) == 3
	})
	res = h.send(t, `{"cmd":"conference","op":"roster","conf":"`+id+`"}`)
	if got, want := resultRoster(res), []string{"bob*", "alice", "carol"}; !slices.Equal(got, want) {
		t.Errorf("roster: %v (%v), want %v", got, res, want)
	}
	eventually(t, "carol's", carolConf.Roster, "carol*", "alice", "bob")
	if got := h.send(t, `{"cmd":"conference","op":"join","conf":"`+id+`"}`); got["error"] != "conference: conference "+id+" is not ringing" {
		t.Errorf("join a conference the bot is in: %v, want an error", got)
	}

	// Mute, hold, resume.
	wantFields(t, "mute", h.send(t, `{"cmd":"conference","op":"mute","conf":"`+id+`"}`), `{"event":"result","op":"mute","conf":"`+id+`","muted":true}`)
	eventually(t, "alice's, bob muted", aliceConf.Roster, "alice*", "bob(muted)", "carol")
	eventually(t, "carol's, bob muted", carolConf.Roster, "carol*", "alice", "bob(muted)")
	if got := resultRoster(h.send(t, `{"cmd":"conference","op":"roster","conf":"`+id+`"}`)); !slices.Equal(got, []string{"bob*(muted)", "alice", "carol"}) {
		t.Errorf("the bot's roster after mute: %v, want itself muted", got)
	}
	wantFields(t, "unmute", h.send(t, `{"cmd":"conference","op":"mute","conf":"`+id+`","on":false}`), `{"event":"result","muted":false}`)
	eventually(t, "alice's, bob unmuted", aliceConf.Roster, "alice*", "bob", "carol")
	wantFields(t, "hold", h.send(t, `{"cmd":"conference","op":"hold","conf":"`+id+`"}`), `{"event":"result","op":"hold","held":true}`)
	h.find(t, "a leg held", func(ev map[string]any) bool {
		return ev["event"] == "call" && ev["conf"] == id && ev["state"] == "held" && ev["reason"] == "by local"
	})
	wantFields(t, "resume", h.send(t, `{"cmd":"conference","op":"hold","conf":"`+id+`","on":false}`), `{"event":"result","op":"hold","held":false}`)

	// Leave: alice and carol go on.
	wantFields(t, "leave", h.send(t, `{"cmd":"conference","op":"leave","conf":"`+id+`"}`),
		`{"event":"result","op":"leave","conf":"`+id+`","reason":"left the conference"}`)
	h.find(t, "the left event", func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf"] == id && ev["conf_state"] == "left" && ev["conf_reason"] == "left the conference"
	})
	eventually(t, "alice's after bob left", aliceConf.Roster, "alice*", "carol")
	eventually(t, "carol's after bob left", carolConf.Roster, "carol*", "alice")
	if got := h.send(t, `{"cmd":"conference","op":"mute","conf":"`+id+`"}`); got["error"] != "conference: no conference "+id {
		t.Errorf("mute after leaving: %v, want no conference", got)
	}
	aliceConf.Leave()

	// dave invites the bot: it declines, and dave is told.
	invited := func() string {
		t.Helper()
		ev := h.next(t, "an invitation from dave", func(ev map[string]any) bool {
			return ev["event"] == "conference" && ev["conf_state"] == "invited" && ev["conf_from"] == "dave"
		})
		return ev["conf"].(string)
	}
	daveConf, err := dave.StartConference(ctx, client.ConfConfig{Users: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := invited(); got != daveConf.ID {
		t.Fatalf("invited to %s, dave started %s", got, daveConf.ID)
	}
	if got := h.send(t, `{"cmd":"conference","op":"mute","conf":"`+daveConf.ID+`"}`); got["error"] != "conference: conference "+daveConf.ID+" is not joined" {
		t.Errorf("mute a ringing conference: %v, want an error", got)
	}
	wantFields(t, "decline", h.send(t, `{"cmd":"conference","op":"decline","conf":"`+daveConf.ID+`"}`),
		`{"event":"result","op":"decline","conf":"`+daveConf.ID+`","peer":"dave"}`)
	for ev := range daveEvents {
		if ev.ConfState == "declined" {
			if ev.Conf != daveConf.ID || ev.ConfFrom != "bob" {
				t.Errorf("dave's declined event: %+v, want bob declining %s", ev, daveConf.ID)
			}
			break
		}
	}
	if got := h.send(t, `{"cmd":"conference","op":"decline","conf":"`+daveConf.ID+`"}`); got["error"] != "conference: no conference "+daveConf.ID {
		t.Errorf("declining twice: %v, want no conference", got)
	}
	daveConf.Leave()
	<-daveConf.Done()

	// dave's next invitation: the bot joins, then leaves.
	daveConf, err = dave.StartConference(ctx, client.ConfConfig{Users: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	id = invited()
	res = h.send(t, `{"cmd":"conference","op":"join","conf":"`+id+`"}`)
	wantFields(t, "join", res, `{"event":"result","op":"join","conf":"`+daveConf.ID+`","peer":"dave"}`)
	if got := resultRoster(res); !slices.Equal(got, []string{"bob*", "dave"}) {
		t.Errorf("join's roster: %v, want bob and dave", got)
	}
	eventually(t, "dave's", daveConf.Roster, "dave*", "bob")
	wantFields(t, "leave", h.send(t, `{"cmd":"conference","op":"leave","conf":"`+id+`"}`), `{"event":"result","reason":"left the conference"}`)
	select {
	case <-daveConf.Done():
		if r := daveConf.Reason(); !strings.Contains(r, "everyone left") {
			t.Errorf("dave's conference ended with %q, want everyone left", r)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("dave's conference goes on after the bot, its only other member, left")
	}
}

// TestConferenceInvitationTakenElsewhere: dave invites bob, whose other
// device joins; the invitation stops ringing at the bot ("left", joined on
// another device), a join command then finds nothing, and dave is not told
// that bob declined.
func TestConferenceInvitationTakenElsewhere(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startBot(t, loginURL, "bob", Config{})
	other, err := client.New(client.Config{Home: t.TempDir(), LoginURL: loginURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Login(ctx, "bob", "password-bob"); err != nil {
		t.Fatal(err)
	}
	joined := make(chan *client.Conference, 1)
	s2, err := other.Online(ctx, client.SessionConfig{OnConfInvite: func(inv *client.ConfInvite) {
		time.Sleep(300 * time.Millisecond) // the bot's device rings meanwhile
		cf, err := inv.Join(ctx, client.Media{})
		if err != nil {
			t.Errorf("bob's other device: join: %v", err)
			return
		}
		joined <- cf
		<-cf.Done()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	declined := make(chan string, 4)
	dave := testnet.Online(t, ctx, loginURL, "dave", client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "conference" && ev.ConfState == "declined" {
			declined <- ev.ConfFrom
		}
	}})
	cf, err := dave.StartConference(ctx, client.ConfConfig{Users: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Leave()
	h.next(t, "the invitation", func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf"] == cf.ID && ev["conf_state"] == "invited"
	})
	h.next(t, "the invitation taken on the other device", func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf"] == cf.ID && ev["conf_state"] == "left" && ev["conf_reason"] == client.ConfJoinedElsewhere
	})
	if got := h.send(t, `{"cmd":"conference","op":"join","conf":"`+cf.ID+`"}`); got["error"] != "conference: no conference "+cf.ID {
		t.Errorf("join after the other device joined: %v, want no conference", got)
	}
	<-joined
	eventually(t, "dave's", cf.Roster, "dave*", "bob")
	select {
	case from := <-declined:
		t.Errorf("dave was told %s declined, but bob's other device joined", from)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestConferenceEndsWithRun: when Run ends, the bot leaves the conference
// it is in (alice, its only other member, is left alone: her part ends) and
// declines the invitation ringing (dave is told), and Run waits for both.
func TestConferenceEndsWithRun(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := startJoiner(t, ctx, loginURL, "alice")
	declined := make(chan string, 4)
	dave := testnet.Online(t, ctx, loginURL, "dave", client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "conference" && ev.ConfState == "declined" {
			declined <- ev.ConfFrom
		}
	}})
	out := &syncBuffer{}
	b := New(Config{Out: out})
	s := testnet.Online(t, ctx, loginURL, "bob", client.SessionConfig{OnEvent: b.Event, OnIncoming: b.OnIncoming, OnConfInvite: b.OnConfInvite})
	runCtx, stop := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx, s, pr) }()
	h := &harness{s: s, out: out, in: pw}
	h.send(t, `{"cmd":"conference","op":"start","users":["alice"]}`)
	aliceConf := alice.conf(t)
	daveConf, err := dave.StartConference(ctx, client.ConfConfig{Users: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	defer daveConf.Leave()
	h.next(t, "dave's invitation", func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf"] == daveConf.ID && ev["conf_state"] == "invited"
	})
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil when its context ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-aliceConf.Done():
		if r := aliceConf.Reason(); r != "everyone left" {
			t.Errorf("alice's part ended with %q, want everyone left", r)
		}
	case <-time.After(10 * time.Second):
		t.Error("alice is still in the conference after the bot's Run ended")
	}
	select {
	case from := <-declined:
		if from != "bob" {
			t.Errorf("dave's invitation declined by %s, want bob", from)
		}
	case <-time.After(10 * time.Second):
		t.Error("dave's invitation was not declined when the bot's Run ended")
	}
	checkLines(t, eventSchema(t), out.lines())
}
