package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// counters are the load's running counts.
type counters struct {
	attaches, busy, dialFailures, drops, leaves          atomic.Int64
	sends, acked, resends, receipts, receiptsSent        atomic.Int64
	presence                                             atomic.Int64
	callsPlaced, callsConnected, callsFailed, callsUpNow atomic.Int64
	callsMaxUp                                           atomic.Int64
}

// Reattach is one user's way back after its connection dropped: when it
// dropped and how long until it was attached again.
type Reattach struct {
	Dropped time.Time     `json:"dropped"`
	Took    time.Duration `json:"took"`
}

func (l *Load) reattached(dropped time.Time, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reattach = append(l.reattach, Reattach{Dropped: dropped, Took: took})
}

// Reattaches are the reattaches of users whose connection dropped at or
// after since.
func (l *Load) Reattaches(since time.Time) []Reattach {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Reattach
	for _, r := range l.reattach {
		if !r.Dropped.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// Stats are the load's counts so far. Lost means "not delivered yet" until
// Quiesce has returned.
type Stats struct {
	Users  int `json:"users"`
	Online int `json:"online"`
	// Attaches counts successful attaches (first, after leaving, after a
	// drop); Busy the busy refusals (503 Retry-After) met; DialFailures
	// the other failed attempts; Drops the connections that dropped (their
	// supernode died); Leaves the users who left for a while.
	Attaches     int64 `json:"attaches"`
	Busy         int64 `json:"busy_refusals"`
	DialFailures int64 `json:"dial_failures"`
	Drops        int64 `json:"drops"`
	Leaves       int64 `json:"leaves"`
	// Messages created; Sends of them (tries), Acked by a supernode as
	// reaching a device, Resends (a try after the first); Delivered:
	// messages that reached their recipient; Receipts that came back.
	Messages  int64 `json:"messages"`
	Sends     int64 `json:"sends"`
	Acked     int64 `json:"acked"`
	Resends   int64 `json:"resends"`
	Delivered int64 `json:"delivered"`
	Receipts  int64 `json:"receipts"`
	// Lost: created and never delivered. Duplicates: one try delivered
	// twice. Misrouted: delivered to someone else. Redelivered: a resend
	// that arrived after an earlier try had (its receipt was lost); the
	// recipient shows the message once, by its id.
	Lost        int64    `json:"lost"`
	LostIDs     []string `json:"lost_ids,omitempty"`
	Duplicates  int64    `json:"duplicates"`
	Misrouted   int64    `json:"misrouted"`
	Redelivered int64    `json:"redelivered"`
	// Presence pushes received.
	Presence int64 `json:"presence_pushes"`
	// Calls to the echo user: placed, connected with audio back, failed,
	// and the most up at once.
	CallsPlaced    int64 `json:"calls_placed"`
	CallsConnected int64 `json:"calls_connected"`
	CallsFailed    int64 `json:"calls_failed"`
	CallsMaxUp     int64 `json:"calls_max_up"`
	// ReattachMax and ReattachP99 over every reattach after a drop.
	Reattaches  int           `json:"reattaches"`
	ReattachP50 time.Duration `json:"reattach_p50"`
	ReattachP99 time.Duration `json:"reattach_p99"`
	ReattachMax time.Duration `json:"reattach_max"`
}

// Stats returns the counts so far.
func (l *Load) Stats() Stats {
	lc := l.ledger.counts()
	st := Stats{Users: len(l.users), Online: l.Online(),
		Attaches: l.st.attaches.Load(), Busy: l.st.busy.Load(), DialFailures: l.st.dialFailures.Load(),
		Drops: l.st.drops.Load(), Leaves: l.st.leaves.Load(),
		Messages: lc.created, Sends: l.st.sends.Load(), Acked: l.st.acked.Load(), Resends: l.st.resends.Load(),
		Delivered: lc.delivered, Receipts: l.st.receipts.Load(),
		Lost: lc.lost, LostIDs: lc.lostIDs, Duplicates: lc.duplicates + lc.unknown, Misrouted: lc.misrouted, Redelivered: lc.redelivered,
		Presence:    l.st.presence.Load(),
		CallsPlaced: l.st.callsPlaced.Load(), CallsConnected: l.st.callsConnected.Load(), CallsFailed: l.st.callsFailed.Load(),
		CallsMaxUp: l.st.callsMaxUp.Load(),
	}
	rs := l.Reattaches(time.Time{})
	st.Reattaches = len(rs)
	st.ReattachP50, st.ReattachP99, st.ReattachMax = Percentiles(rs)
	return st
}

// Percentiles are the median, 99th percentile and longest of rs's Took.
func Percentiles(rs []Reattach) (p50, p99, maxTook time.Duration) {
	if len(rs) == 0 {
		return 0, 0, 0
	}
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.Took
	}
	slices.Sort(d)
	return d[len(d)/2], d[min(len(d)-1, len(d)*99/100)], d[len(d)-1]
}

// Check looks every online user up through another user's supernode (the
// mesh's directory) and returns those not found. Run it after Quiesce.
func (l *Load) Check(ctx context.Context) ([]string, error) {
	var (
		mu      sync.Mutex
		missing []string
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 16)
	)
	n := len(l.users)
	for i, u := range l.users {
		if !u.online() {
			continue
		}
		// The asker: the first online user half the population away,
		// most often on another supernode.
		var asker *vuser
		for k := 0; k < n && asker == nil; k++ {
			if a := l.users[(i+n/2+k)%n]; a != u && a.online() {
				asker = a
			}
		}
		if asker == nil {
			return nil, fmt.Errorf("loadgen: check: no other user online")
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ok := false
			for try := 0; try < 3 && !ok; try++ {
				conn := asker.currentConn()
				if conn == nil {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				found, err := conn.Lookup(lctx, u.name)
				cancel()
				ok = err == nil && found.Devices > 0
			}
			if !ok {
				mu.Lock()
				missing = append(missing, u.name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(missing)
	return missing, ctx.Err()
}
