package client

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// endless is a source that always has a frame ready but is not an
// ImmediateSource, so calls read it through a prefetch.
type endless struct{ reads int }

func (e *endless) ReadFrame() ([]int16, error) {
	e.reads++
	return make([]int16, 960), nil
}

// A call that ends before its source does not leave the prefetch goroutine
// blocked on its full queue: synctest fails the test if any goroutine of
// the bubble is still blocked when it returns.
func TestPrefetchEndsWithTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		src := &endless{}
		p := newFrameNexter(ctx, src)
		if _, ok, err := p.next(20 * time.Millisecond); !ok || err != nil {
			t.Fatalf("next: ok %v, err %v", ok, err)
		}
		synctest.Wait() // the queue is full and the reader blocked on it
		cancel()
		synctest.Wait()
		got := src.reads
		time.Sleep(time.Second)
		if src.reads != got {
			t.Errorf("the source was read %d more times after the call ended", src.reads-got)
		}
	})
}
