package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
)

// FileConfig says where and how a session receives files.
type FileConfig struct {
	// Dir is where received files go (made, mode 0700, if missing); ""
	// means "downloads" in the home.
	Dir string
	// Retry is how long after a transfer stopped (the disk full, the
	// login server unreachable, the sender still uploading) it is tried
	// again from where it stopped; 0 means im.FileRetry (10 s).
	Retry time.Duration
}

// Receiving timing.
const (
	// syncEvery: the .part file is fsynced, and the chunks on disk
	// recorded, every syncEvery chunks (1 MiB).
	syncEvery = 16
	// rescanEvery: the receiver looks at the home's offers this often
	// (another process on the home, `parley chat`, may have stored one).
	rescanEvery = 5 * time.Second
)

// errFileGone and the like stop a transfer for good (Resumable false). A
// stored file stays a day (login's FileFetchedGrace) after its recipients
// took it, for every device of theirs: gone means it expired from the
// store, was withdrawn, or was taken more than a day ago.
var errFileGone = errors.New("the file is no longer in the login server's store (expired, withdrawn, or taken more than a day ago)")

// permanent marks an error that no retry will mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// ReceiveFiles makes the session fetch the files offered to this user:
// those offered now, those that came while it was offline (in the
// mailbox), and those an earlier session left half-way, each from its
// first missing chunk. Events: "file-offer", "file-progress", "file",
// "file-failed". Call it once, after Online.
func (s *Session) ReceiveFiles(cfg FileConfig) error {
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(s.c.home.dir, "downloads")
	}
	cfg.Retry = cmpDur(cfg.Retry, im.FileRetry)
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("client: download directory: %w", err)
	}
	cfg.Dir = abs
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("client: download directory: %w", err)
	}
	fsx := &s.im.files
	fsx.mu.Lock()
	if fsx.cfg != nil {
		fsx.mu.Unlock()
		return fmt.Errorf("client: ReceiveFiles called twice")
	}
	fsx.cfg, fsx.kick = &cfg, make(chan struct{}, 1)
	fsx.mu.Unlock()
	s.Go(s.im.receiveLoop)
	return nil
}

// kickFiles wakes the receiver, if there is one.
func (m *messenger) kickFiles() {
	m.files.mu.Lock()
	k := m.files.kick
	m.files.mu.Unlock()
	if k != nil {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// receiveLoop fetches the offered files, one at a time, until the session
// ends.
func (m *messenger) receiveLoop(ctx context.Context) {
	m.files.mu.Lock()
	cfg, kick := *m.files.cfg, m.files.kick
	m.files.mu.Unlock()
	pruneStates(m.s.c.home.dir, time.Now())
	retryAt := map[string]time.Time{}
	t := time.NewTicker(rescanEvery)
	defer t.Stop()
	for {
		ids, err := stateIDs(m.s.c.home.dir, "in")
		if err != nil {
			m.s.c.log.Warn("reading the files in transfer", "err", err)
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			if time.Now().Before(retryAt[id]) {
				continue
			}
			if err := m.receive(ctx, cfg, id); err != nil && ctx.Err() == nil {
				retryAt[id] = time.Now().Add(cfg.Retry)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
	}
}

// receive fetches the incoming file key (its inKey) if it is still to
// fetch, and reports how it went; an error means "try again later".
func (m *messenger) receive(ctx context.Context, cfg FileConfig, key string) error {
	s := m.s
	f, err := loadIn(s.c.home.dir, key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.c.log.Warn("a file in transfer", "key", key, "err", err)
		}
		return nil
	}
	id := f.Offer.ID
	if f.Done || f.Failed != "" || !f.Offer.Stored {
		return nil // done, given up, or coming over a data channel (filep2p.go)
	}
	ev := FileEvent{ID: id, Name: f.Offer.Name, Type: f.Offer.Type, Size: f.Offer.Size, Direction: FileIn, Route: RouteStore, Group: f.Group}
	peer := f.From
	if f.Group != "" {
		peer = im.GroupPeer(f.Group)
	}
	err = m.fetch(ctx, cfg, f, &progress{s: s, ev: ev, peer: peer, d: 250 * time.Millisecond})
	if err == nil || ctx.Err() != nil {
		return nil
	}
	ev.Bytes, ev.Error = f.onDisk(), err.Error()
	var p permanent
	if errors.As(err, &p) {
		f.Failed = err.Error()
		if err := saveState(fileStatePath(s.c.home.dir, "in", key), f); err != nil {
			s.c.log.Warn("saving a file's state", "id", id, "err", err)
		}
		s.emit(Event{Event: EventFileFailed, Peer: peer, FileEvent: &ev})
		return nil
	}
	ev.Resumable = true
	s.emit(Event{Event: EventFileFailed, Peer: peer, FileEvent: &ev})
	return err
}

// fetch fetches the chunks f lacks from the store, checks the file and
// names it.
func (m *messenger) fetch(ctx context.Context, cfg FileConfig, f *inFile, pr *progress) error {
	k, err := m.openSink(cfg, f, pr)
	if err != nil {
		return err
	}
	defer k.close()
	for i := f.missing(); i < f.Offer.Chunks(); i++ {
		if f.has(i) {
			continue
		}
		sealed, err := m.storedChunk(ctx, f.Offer.ID, i)
		if err != nil {
			k.save()
			return err
		}
		if err := k.put(i, sealed); err != nil {
			return err
		}
	}
	return k.finish(ctx, nil)
}

// storedChunk fetches a chunk from the store, waiting up to im.FileUploadWait
// for one the sender has not uploaded yet.
func (m *messenger) storedChunk(ctx context.Context, id string, i int64) ([]byte, error) {
	deadline := time.Now().Add(im.FileUploadWait)
	for {
		lc, cred, err := m.s.c.withCred(ctx)
		if err != nil {
			return nil, err
		}
		b, err := lc.GetChunk(ctx, cred, id, i)
		switch {
		case err == nil:
			return b, nil
		case errors.Is(err, loginapi.ErrUnknownFile):
			return nil, permanent{errFileGone}
		case !errors.Is(err, loginapi.ErrNoChunk) || time.Now().After(deadline):
			return nil, err
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// maxPlacedName caps the name a received file gets, in bytes (under
// every file system's 255, with room for " (999)").
const maxPlacedName = 240

// placeFile gives the file at part the name name in dir, or "stem (N).ext"
// when name is taken: a hard link, which never replaces a file (unlike a
// rename), then the caller removes part. It returns the path.
func placeFile(dir, name, part string) (string, error) {
	stem, ext := name, filepath.Ext(name)
	if ext == name || len(ext) > 32 {
		ext = ""
	}
	stem = strings.TrimSuffix(name, ext)
	stem = truncUTF8(stem, maxPlacedName-len(ext)-6)
	for n := 0; n < 1000; n++ {
		cand := stem + ext
		if n > 0 {
			cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
		}
		p := filepath.Join(dir, cand)
		err := os.Link(part, p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: every name up to (999) is taken in %s", name, dir)
}

// truncUTF8 cuts s to at most n bytes at a character boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// openedFile handles a file envelope that verified and opened.
func (m *messenger) openedFile(o *im.Opened, via string) {
	s := m.s
	b := o.File
	switch b.T {
	case im.FileBodyOffer:
		m.openedOffer(o, via)
	case im.FileBodyDone:
		if o.From == s.user {
			return
		}
		m.mu.Lock()
		m.acks[o.From] = append(m.acks[o.From], o.ID) // its sender waits for the receipt
		m.mu.Unlock()
		out, err := loadOut(s.c.home.dir, b.File)
		if err != nil || (out.Group == "" && out.To != o.From) {
			return // not a file of this device's to that user
		}
		if out.Group != "" {
			if g, err := m.group(out.Group); err != nil || g == nil || !g.IsMember(o.From) {
				return
			}
		}
		peer := o.From
		if out.Group != "" {
			peer = im.GroupPeer(out.Group)
		}
		m.markDelivered(b.File)
		s.emit(Event{Event: EventFileDelivered, Peer: peer, FileEvent: &FileEvent{ID: b.File, Name: out.Offer.Name, Size: out.Offer.Size,
			Direction: FileOut, Bytes: out.Offer.Size, Group: out.Group}})
	case im.FileBodySignal:
		m.openedFileSignal(o)
	}
}

// openedOffer stores an offer as the file's entry in the history, shows
// it, records it for the receiver and acknowledges it.
func (m *messenger) openedOffer(o *im.Opened, via string) {
	s := m.s
	b := o.File
	msg := im.Message{ID: im.FileMessageID(b), Peer: o.From, Dir: im.DirIn, FromDevice: o.FromDevice, Seq: o.Seq, TS: o.TS,
		Text: im.FileNote(b.Offer), State: im.StateReceived}
	if b.Group != "" {
		g, err := m.group(b.Group)
		if err != nil || g == nil || !g.IsMember(o.From) || !g.IsMember(s.user) {
			s.c.log.Warn("a file offered to a group this device does not know the sender in", "from", o.From, "group", b.Group)
			return
		}
		msg.Peer, msg.From, msg.Seq = im.GroupPeer(b.Group), o.From, b.Seq
	}
	if o.From == s.user {
		// A copy of what another of my devices sent.
		msg.Dir, msg.State = im.DirOut, im.StateSent
		if b.Group == "" {
			msg.Peer = o.To
		}
	}
	isNew, err := m.hist.AddIncoming(msg)
	if err != nil {
		s.c.log.Error("storing a file offer", "from", o.From, "err", err)
		return // not acknowledged: it comes again
	}
	if b.Group == "" || via != ViaMailbox {
		m.mu.Lock()
		m.acks[o.From] = append(m.acks[o.From], o.ID)
		m.mu.Unlock()
	}
	if !isNew {
		// Offered again: perhaps now through the store (a data channel
		// could not carry it all).
		key := inKey(o.From, b.Offer.ID)
		if in, err := loadIn(s.c.home.dir, key); err == nil && b.Offer.Stored && !in.Offer.Stored {
			in.Offer.Stored = true
			if err := saveState(fileStatePath(s.c.home.dir, "in", key), in); err != nil {
				s.c.log.Warn("saving a file's state", "id", b.Offer.ID, "err", err)
			}
		}
		m.kickFiles()
		return
	}
	ev := MessageEvent{ID: msg.ID, From: o.From, To: o.To, Text: msg.Text, Sent: time.UnixMilli(o.TS), Via: via, Group: b.Group}
	if b.Group != "" {
		ev.To = ""
		if g, err := m.group(b.Group); err == nil && g != nil {
			ev.GroupName = g.Name
		}
	}
	s.emit(Event{Event: "message", Peer: msg.Peer, MessageEvent: &ev})
	if o.From == s.user {
		return
	}
	path := fileStatePath(s.c.home.dir, "in", inKey(o.From, b.Offer.ID))
	if _, err := os.Stat(path); err == nil {
		m.kickFiles()
		return
	}
	in := &inFile{V: fileStateV, Offer: b.Offer, From: o.From, Group: b.Group, MID: b.MID, Offered: time.Now().UnixMilli()}
	if err := saveState(path, in); err != nil {
		s.c.log.Error("recording a file offer", "from", o.From, "err", err)
		return
	}
	s.emit(Event{Event: EventFileOffer, Peer: msg.Peer, FileEvent: &FileEvent{ID: b.Offer.ID, Name: b.Offer.Name, Type: b.Offer.Type,
		Size: b.Offer.Size, Direction: FileIn, Group: b.Group}})
	m.kickFiles()
}
