package client

import (
	"context"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/signal"
)

// SignGroupOpForTest signs an operation with this device's keys, allowed or
// not, without applying it.
func (s *Session) SignGroupOpForTest(ctx context.Context, d im.OpDraft) (*im.GroupOp, error) {
	return s.im.signOp(ctx, d)
}

// SendGroupOpsForTest sends ops of group id to user to in a group envelope,
// as this device sends its own.
func (s *Session) SendGroupOpsForTest(ctx context.Context, to, id string, ops []*im.GroupOp) error {
	return s.im.sendOps(ctx, to, id, im.GroupOps, ops, "", false)
}

// SendHistoryForTest seals body to this user's other devices and delivers
// it, as this device sends its own history envelopes.
func (s *Session) SendHistoryForTest(ctx context.Context, body *im.HistoryBody) error {
	devs, err := s.im.ownDevices(ctx)
	if err != nil {
		return err
	}
	return s.im.sendHistory(ctx, devs, body)
}

// DialLegForTest places a leg of conference conf to member ("user/device")
// as if this device were in it, and returns the error of the attempt.
func (s *Session) DialLegForTest(ctx context.Context, conf, member string) error {
	user, device, _ := signal.SplitMember(member)
	c, err := s.place(ctx, user, Media{}, &legTarget{conf: conf, device: device})
	if err == nil {
		c.Hangup("")
		<-c.Done()
	}
	return err
}

// DeviceForTest returns the session's device id.
func (s *Session) DeviceForTest() string { return s.device }
