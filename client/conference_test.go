package client_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/wire/signal"
)

// clockSource plays pcm on the wall clock from t0: whenever it is first
// read, it starts at the frame due then, so that participants who join at
// different moments still speak in their own time slots.
type clockSource struct {
	pcm   []int16
	t0    time.Time
	next  int
	start sync.Once
}

func (c *clockSource) ReadFrame() ([]int16, error) {
	c.start.Do(func() { c.next = max(0, int(time.Since(c.t0)/codec.FrameDuration)) })
	f := make([]int16, codec.FrameSamples)
	if from := c.next * codec.FrameSamples; from < len(c.pcm) {
		copy(f, c.pcm[from:])
	}
	c.next++
	return f, nil
}

// slotted is speech of seed in slot i (slot long, speech long each), silence
// elsewhere, total long.
func slotted(seed uint64, i int, lead, slot, speech, total time.Duration) (pcm, voice []int16) {
	voice = audiotest.Speech(seed, speech)
	pcm = append(audiotest.Silence(lead+time.Duration(i)*slot), voice...)
	return append(pcm, audiotest.Silence(total-lead-time.Duration(i)*slot-speech)...), voice
}

// TestConferenceMixesEveryoneButYou: four devices in a conference started
// by alice; each hears the three others in their slots and never itself;
// alice leaves after her slot and the other three go on hearing each other.
func TestConferenceMixesEveryoneButYou(t *testing.T) {
	n := startNetwork(t, nil)
	const (
		lead   = 3 * time.Second
		slot   = 2 * time.Second
		speech = 1200 * time.Millisecond
		total  = lead + 4*slot + time.Second
	)
	names := []string{"alice", "bob", "carol", "dave"}
	t0 := time.Now().Add(2 * time.Second) // sessions are online by then
	recs := make([]*recorder, len(names))
	voices := make([][]int16, len(names))
	srcs := make([]*clockSource, len(names))
	evs := make([]*events, len(names))
	sessions := make([]*client.Session, len(names))
	confs := make(chan *client.Conference, len(names))
	for i, name := range names {
		pcm, voice := slotted(uint64(10+i), i, lead, slot, speech, total)
		recs[i], voices[i], srcs[i], evs[i] = &recorder{}, voice, &clockSource{pcm: pcm, t0: t0}, &events{}
		media := client.Media{Source: srcs[i], Sink: recs[i]}
		sessions[i] = n.user(t, name, client.SessionConfig{OnEvent: evs[i].add, OnConfInvite: func(inv *client.ConfInvite) {
			cf, err := inv.Join(context.Background(), media)
			if err != nil {
				t.Errorf("%s: join: %v", name, err)
				return
			}
			confs <- cf
			<-cf.Done()
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	time.Sleep(time.Until(t0.Add(-time.Second)))
	start := time.Now()
	alice, err := sessions[0].StartConference(ctx, client.ConfConfig{Users: names[1:], Media: client.Media{Source: srcs[0], Sink: recs[0]}})
	if err != nil {
		t.Fatal(err)
	}
	// Everyone is in, with a leg to each of the three others.
	waitRoster := func(i, want int) {
		t.Helper()
		for ctx.Err() == nil {
			if r := lastRoster(evs[i]); len(r) == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: roster never reached %d: %v", names[i], want, lastRoster(evs[i]))
	}
	for i := range names {
		waitRoster(i, 4)
	}
	t.Logf("all four in each other's rosters after %v", time.Since(start).Round(time.Millisecond))
	// alice leaves once her slot is over.
	time.Sleep(time.Until(t0.Add(lead + speech + 300*time.Millisecond)))
	alice.Leave()
	<-alice.Done()
	time.Sleep(time.Until(t0.Add(total)))
	for i := 1; i < len(names); i++ {
		waitRoster(i, 3)
	}
	heardAt := make([]time.Duration, len(names)) // where the others hear each voice
	pcms := make([][]int16, len(names))
	for j, rec := range recs {
		pcms[j], _, _ = rec.snapshot()
	}
	for j, pcm := range pcms {
		for i, voice := range voices {
			if i == j || j == 0 && i > 0 {
				continue // yourself, checked below; alice left before the others spoke
			}
			corr, lag := audiotest.MatchEnvelope(voice, pcm, time.Duration(len(pcm))*time.Second/48000)
			if corr < 0.8 {
				t.Errorf("%s's recording: %s's voice correlation %.2f at %v, want ≥ 0.8", names[j], names[i], corr, lag)
				continue
			}
			t.Logf("%s hears %s: correlation %.3f at %v", names[j], names[i], corr, lag)
			heardAt[i] = lag
		}
	}
	// Nobody hears themselves: their own recording is silent while they speak.
	for j, pcm := range pcms {
		from := int(heardAt[j] * 48000 / time.Second)
		to := min(len(pcm), from+int(speech*48000/time.Second))
		if heardAt[j] == 0 || from >= to {
			continue
		}
		if db := audiotest.RMSdB(pcm[from:to]); db > -50 {
			t.Errorf("%s's recording while %s speaks: %.1f dBFS, want silence (its own voice comes back)", names[j], names[j], db)
		}
	}
	for i := 1; i < len(names); i++ {
		sessions[i].Close()
	}
}

// lastRoster is the roster of the last "conference" event that carried one.
func lastRoster(e *events) []client.ConfMember {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.all) - 1; i >= 0; i-- {
		if ev := e.all[i]; ev.Event == "conference" && ev.ConfEvent != nil && ev.ConfState == "roster" {
			return ev.Roster
		}
	}
	return nil
}

// TestConferenceRefusesTheUninvited: a user who was not invited cannot get a
// leg, even knowing the conference's id and a member's device.
func TestConferenceRefusesTheUninvited(t *testing.T) {
	n := startNetwork(t, nil)
	bob := n.user(t, "bob", client.SessionConfig{})
	alice := n.user(t, "alice", client.SessionConfig{})
	eve := n.user(t, "eve", client.SessionConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cf, err := alice.StartConference(ctx, client.ConfConfig{Users: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Leave()
	err = eve.DialLegForTest(ctx, cf.ID, signal.Member("alice", alice.DeviceForTest()))
	if !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "not invited") {
		t.Fatalf("eve's leg: %v, want refused: not invited", err)
	}
	_ = bob
}

// TestCallBecomesAConference: alice and bob are in a 1:1 call; alice adds
// carol; carol joins and the three hear each other, the 1:1 call carrying on
// as the conference's first leg.
func TestCallBecomesAConference(t *testing.T) {
	n := startNetwork(t, nil)
	const (
		lead   = 4 * time.Second
		slot   = 2 * time.Second
		speech = 1200 * time.Millisecond
		total  = lead + 3*slot + time.Second
	)
	t0 := time.Now().Add(2 * time.Second)
	names := []string{"alice", "bob", "carol"}
	recs, voices, media := make([]*recorder, 3), make([][]int16, 3), make([]client.Media, 3)
	for i := range names {
		pcm, voice := slotted(uint64(20+i), i, lead, slot, speech, total)
		recs[i], voices[i] = &recorder{}, voice
		media[i] = client.Media{Source: &clockSource{pcm: pcm, t0: t0}, Sink: recs[i]}
	}
	evCarol := &events{}
	alice := n.user(t, "alice", client.SessionConfig{})
	n.user(t, "bob", client.SessionConfig{OnIncoming: func(in *client.Incoming) {
		if c, err := in.Answer(context.Background(), media[1]); err == nil {
			<-c.Done()
		}
	}})
	n.user(t, "carol", client.SessionConfig{OnEvent: evCarol.add, OnConfInvite: func(inv *client.ConfInvite) {
		if cf, err := inv.Join(context.Background(), media[2]); err == nil {
			<-cf.Done()
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call, err := alice.Call(ctx, "bob", media[0])
	if err != nil {
		t.Fatal(err)
	}
	cf, err := call.AddToConference(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil && len(lastRoster(evCarol)) < 3 {
		time.Sleep(50 * time.Millisecond)
	}
	if r := lastRoster(evCarol); len(r) != 3 {
		t.Fatalf("carol's roster: %v, want alice, bob and herself", r)
	}
	time.Sleep(time.Until(t0.Add(total)))
	cf.Leave()
	<-cf.Done()
	for j := range names {
		pcm, _, _ := recs[j].snapshot()
		for i, voice := range voices {
			if i == j {
				continue
			}
			if corr, lag := audiotest.MatchEnvelope(voice, pcm, time.Duration(len(pcm))*time.Second/48000); corr < 0.8 {
				t.Errorf("%s hears %s: correlation %.2f at %v, want ≥ 0.8", names[j], names[i], corr, lag)
			}
		}
	}
}

// TestConferenceHoldSendsHeartbeats: a conference on hold keeps every leg
// alive as a 1:1 call on hold does — a heartbeat every 200 ms each way
// instead of 50 packets a second — and resumes.
func TestConferenceHoldSendsHeartbeats(t *testing.T) {
	n := startNetwork(t, nil)
	media := func() client.Media {
		return client.Media{Source: &loopSource{pcm: audiotest.Speech(5, 2*time.Second)}, Sink: &recorder{}}
	}
	join := client.SessionConfig{OnConfInvite: func(inv *client.ConfInvite) {
		if cf, err := inv.Join(context.Background(), media()); err == nil {
			<-cf.Done()
		}
	}}
	alice := n.user(t, "alice", client.SessionConfig{})
	n.user(t, "bob", join)
	n.user(t, "carol", join)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cf, err := alice.StartConference(ctx, client.ConfConfig{Users: []string{"bob", "carol"}, Media: media()})
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Leave()
	for ctx.Err() == nil && len(cf.Roster()) < 3 {
		time.Sleep(20 * time.Millisecond)
	}
	received := func(d time.Duration) float64 { // packets a second from both legs
		before := cf.Stats().PacketsReceived
		time.Sleep(d)
		return float64(cf.Stats().PacketsReceived-before) / d.Seconds()
	}
	time.Sleep(500 * time.Millisecond)
	if got := received(time.Second); got < 80 {
		t.Errorf("before hold: %.0f packets/s from two legs, want about 100", got)
	}
	cf.Hold(true)
	time.Sleep(300 * time.Millisecond) // the peers hear of it
	if got := received(2 * time.Second); got < 6 || got > 20 {
		t.Errorf("on hold: %.1f packets/s from two legs, want the heartbeats' 10", got)
	}
	if len(cf.Roster()) != 3 {
		t.Errorf("on hold the roster lost someone: %v", cf.Roster())
	}
	cf.Hold(false)
	time.Sleep(300 * time.Millisecond)
	if got := received(time.Second); got < 80 {
		t.Errorf("resumed: %.0f packets/s from two legs, want about 100", got)
	}
}
