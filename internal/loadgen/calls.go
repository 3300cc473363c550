package loadgen

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/wire/loginapi"
)

// callers are Config.Calls users of the client library, each placing calls
// to the echo user one after another.
type callers struct {
	l        *Load
	ctx      context.Context
	cancel   context.CancelFunc
	stopped  atomic.Bool // no new calls (Quiesce)
	wg       sync.WaitGroup
	sessions []*client.Session
}

// startCallers logs the calling users in (registering them if need be),
// puts each online and starts its calls.
func startCallers(ctx context.Context, l *Load) (*callers, error) {
	c := &callers{l: l}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := range l.cfg.Calls {
		name := fmt.Sprintf("%scall%02d", l.cfg.Prefix, i)
		cl, err := client.New(client.Config{Home: filepath.Join(l.cfg.Home, name), LoginURL: l.cfg.LoginURL, Logger: l.log})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("loadgen: caller %s: %w", name, err)
		}
		if err := cl.Register(ctx, name, l.cfg.Password); err != nil && !errors.Is(err, loginapi.ErrUserExists) {
			c.close()
			return nil, fmt.Errorf("loadgen: caller %s: %w", name, err)
		}
		if err := cl.Login(ctx, name, l.cfg.Password); err != nil {
			c.close()
			return nil, fmt.Errorf("loadgen: caller %s: %w", name, err)
		}
		s, err := cl.Online(ctx, client.SessionConfig{NoPresence: true})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("loadgen: caller %s online: %w", name, err)
		}
		c.sessions = append(c.sessions, s)
		c.wg.Go(func() { c.run(s) })
	}
	return c, nil
}

// frames counts what a call hears.
type frames struct{ n atomic.Int64 }

func (f *frames) WriteFrame([]int16) error {
	f.n.Add(1)
	return nil
}

// run places calls to the echo user until stopped: each lasts CallLength
// and counts as connected when audio came back.
func (c *callers) run(s *client.Session) {
	cfg := c.l.cfg
	for !c.stopped.Load() && c.ctx.Err() == nil {
		c.l.st.callsPlaced.Add(1)
		heard := &frames{}
		cctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		call, err := s.Call(cctx, cfg.EchoUser, client.Media{Sink: heard})
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.l.st.callsFailed.Add(1)
			c.l.log.Warn("call to echo failed", "err", err)
			sleepCtx(c.ctx, time.Second)
			continue
		}
		up := c.l.st.callsUpNow.Add(1)
		for {
			m := c.l.st.callsMaxUp.Load()
			if up <= m || c.l.st.callsMaxUp.CompareAndSwap(m, up) {
				break
			}
		}
		select {
		case <-c.ctx.Done():
		case <-call.Done():
		case <-time.After(cfg.CallLength):
		}
		call.Hangup("hangup")
		<-call.Done()
		c.l.st.callsUpNow.Add(-1)
		if heard.n.Load() > 0 {
			c.l.st.callsConnected.Add(1)
		} else {
			c.l.st.callsFailed.Add(1)
		}
	}
}

// stop lets the calls up end at their time and places no new ones.
func (c *callers) stop() { c.stopped.Store(true) }

// close ends the calls and the sessions.
func (c *callers) close() {
	c.stopped.Store(true)
	c.cancel()
	c.wg.Wait()
	for _, s := range c.sessions {
		s.Close()
	}
}
