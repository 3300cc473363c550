package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
)

// receiveDirect answers a sender's offer of a direct connection for file
// f and takes the chunks it lacks over it (filep2p.go).
func (m *messenger) receiveDirect(ctx context.Context, cfg FileConfig, f *inFile, offer string) error {
	s, o := m.s, f.Offer
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pc, err := s.newFilePC(ctx)
	if err != nil {
		return err
	}
	defer pc.Close()
	dcs := make(chan *webrtc.DataChannel, 1)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() == im.FileP2PLabel {
			select {
			case dcs <- dc:
			default:
			}
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return err
	}
	desc, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	sdp, err := gathered(ctx, pc, desc)
	if err != nil {
		return err
	}
	if _, err := m.sendFileBody(ctx, f.From, &im.FileBody{T: im.FileBodySignal, File: o.ID, SDPType: "answer", SDP: sdp}, time.Now(), false); err != nil {
		return err
	}
	var dc *webrtc.DataChannel
	select {
	case dc = <-dcs:
	case <-time.After(im.FileP2PConnectWait):
		return fmt.Errorf("no data channel in %v: %w", im.FileP2PConnectWait, errCut)
	case <-ctx.Done():
		return ctx.Err()
	}
	opened, closed := make(chan struct{}), make(chan struct{})
	pieces := make(chan []byte, 64)
	dc.OnOpen(func() { close(opened) })
	dc.OnClose(func() { close(closed) })
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		if msg.IsString {
			return
		}
		select {
		case pieces <- append([]byte(nil), msg.Data...):
		case <-closed:
		case <-ctx.Done():
		}
	})
	if dc.ReadyState() != webrtc.DataChannelStateOpen {
		select {
		case <-opened:
		case <-closed:
			return errCut
		case <-time.After(im.FileP2PConnectWait):
			return fmt.Errorf("the data channel did not open in %v: %w", im.FileP2PConnectWait, errCut)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	route := fileRoute(pc)
	peer := f.From
	ev := FileEvent{ID: o.ID, Name: o.Name, Type: o.Type, Size: o.Size, Direction: FileIn, Route: route}
	k, err := m.openSink(cfg, f, &progress{s: s, ev: ev, peer: peer, d: 250 * time.Millisecond})
	if err != nil {
		return err
	}
	defer k.close()
	say := func(c p2pCtrl) error {
		b, _ := json.Marshal(c)
		return dc.SendText(string(b))
	}
	fail := func(err error) error {
		ev := k.pr.ev
		ev.Bytes, ev.Error = f.onDisk(), err.Error()
		var p permanent
		if errors.As(err, &p) {
			f.Failed = err.Error()
			saveState(k.statePath, f)
		} else {
			ev.Resumable = true
		}
		s.emit(Event{Event: EventFileFailed, Peer: peer, FileEvent: &ev})
		return err
	}
	if err := say(p2pCtrl{T: im.FileP2PWant, From: f.missing()}); err != nil {
		return errCut
	}
	var cur []byte
	idx := int64(-1)
	for !k.complete() {
		var p []byte
		select {
		case p = <-pieces:
		case <-closed:
			k.save()
			return fail(errCut)
		case <-time.After(im.FileP2PStall):
			k.save()
			return fail(fmt.Errorf("nothing from the sender for %v: %w", im.FileP2PStall, errCut))
		case <-ctx.Done():
			k.save()
			return ctx.Err()
		}
		if len(p) <= im.FileP2PHeader {
			return fail(permanent{fmt.Errorf("a data channel message of %d bytes: %w", len(p), im.ErrBadFile)})
		}
		i, off := int64(binary.BigEndian.Uint64(p)), int(binary.BigEndian.Uint32(p[8:]))
		want := loginapi.SealedChunkSize(o.Size, i)
		if off == 0 {
			idx, cur = i, cur[:0]
		}
		if want < 0 || i != idx || off != len(cur) || int64(off+len(p)-im.FileP2PHeader) > want {
			return fail(permanent{fmt.Errorf("chunk %d at %d: out of order or out of range: %w", i, off, im.ErrBadFile)})
		}
		cur = append(cur, p[im.FileP2PHeader:]...)
		if int64(len(cur)) < want {
			continue
		}
		if err := k.put(i, cur); err != nil {
			return fail(err)
		}
		idx = -1
		if k.unsynced%im.FileP2PAckEvery == 0 {
			say(p2pCtrl{T: im.FileP2PAck, Bytes: k.done})
		}
	}
	if err := k.finish(ctx, func() { say(p2pCtrl{T: im.FileP2PDone}) }); err != nil {
		return fail(err)
	}
	// Let "done" leave before the connection closes.
	for t := time.Now(); dc.BufferedAmount() > 0 && time.Since(t) < time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return nil
}
