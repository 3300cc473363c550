package client

// Files (docs/files.md): a file goes as an offer — a [im.KindFile]
// envelope, sealed and signed like a message, that lands in the history
// as a message-like entry — and its chunks, each sealed with the file's
// own key (im.FileOffer.SealChunk). The chunks go through the login
// server's end-to-end encrypted store for devices that cannot be reached
// at once: the sender uploads them, then sends the offer; a receiver (a
// session that called ReceiveFiles, at once or at its next login)
// fetches them from its first missing chunk, checks each, writes them to
// a .part file in its download directory, checks the whole file's hash
// against the one its sender signed, and only then gives the file its
// name, one that names no other file (filerecv.go).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// File events ([Event.Event]); their payload is a [FileEvent].
const (
	// EventFileOffer: a file was offered to this user (Peer: by whom).
	EventFileOffer = "file-offer"
	// EventFileProgress: bytes of a file went or came.
	EventFileProgress = "file-progress"
	// EventFile: a file arrived whole, its hash checked; FilePath is
	// where it is.
	EventFile = "file"
	// EventFileSent: the sender's part is done: every chunk is where the
	// recipients can fetch it, and the offer went.
	EventFileSent = "file-sent"
	// EventFileDelivered: a device of the recipient has the whole file,
	// its hash checked.
	EventFileDelivered = "file-delivered"
	// EventFileFailed: a transfer stopped; Resumable says whether it
	// goes on later (from where it stopped) or never.
	EventFileFailed = "file-failed"
)

// Directions of a file transfer (FileEvent.Direction).
const (
	FileIn  = "in"
	FileOut = "out"
)

// Routes of a file's chunks (FileEvent.Route).
const (
	// RouteStore: through the login server's store.
	RouteStore = "store"
	// RouteDirect, RouteRelay: over a data channel between the two
	// devices, directly or through a relay.
	RouteDirect = "direct"
	RouteRelay  = "relay"
)

// FileEvent is the payload of the file events. Every field has a "file"
// prefix: the JSON of an [Event] is flat.
type FileEvent struct {
	// ID is the file's id; Name, Type and Size the offer's.
	ID   string `json:"file"`
	Name string `json:"file_name,omitempty"`
	Type string `json:"file_type,omitempty"`
	Size int64  `json:"file_size,omitempty"`
	// Direction is FileIn or FileOut; Route how the chunks go.
	Direction string `json:"file_direction,omitempty"`
	Route     string `json:"file_route,omitempty"`
	// Bytes is how many of Size are done (on disk, or uploaded).
	Bytes int64 `json:"file_bytes"`
	// Group is the group id of a group's file.
	Group string `json:"file_group,omitempty"`
	// Path is where a received file is (EventFile).
	Path string `json:"file_path,omitempty"`
	// Hash is the SHA-256 the sender signed (EventFile, EventFileSent).
	Hash string `json:"file_hash,omitempty"`
	// Resent counts the bytes that went twice (a transfer resumed after
	// a cut: what was in flight), on EventFile.
	Resent int64 `json:"file_resent,omitempty"`
	// Error says why (EventFileFailed); Resumable whether it goes on.
	Error     string `json:"file_error,omitempty"`
	Resumable bool   `json:"file_resumable,omitempty"`
	// Recipients and Stored: on EventFileSent, how many users were
	// offered it, and whether the chunks are in the login server's store.
	Recipients int  `json:"file_recipients,omitempty"`
	Stored     bool `json:"file_stored,omitempty"`
}

// SendFileConfig says how to send a file.
type SendFileConfig struct {
	// Group: the recipient names a group (its name or id), not a user.
	Group bool
	// ProgressEvery is the least time between two "file-progress"
	// events; 0 means 250 ms.
	ProgressEvery time.Duration
	// StoreOnly: through the login server's store even when the
	// recipient is online (no direct connection is tried).
	StoreOnly bool
}

// FileResult says how far a file got.
type FileResult struct {
	FileEvent
	// Resumed counts the bytes an earlier, interrupted send of the same
	// file to the same recipient had uploaded already.
	Resumed int64
}

// fileSet is the files part of a messenger; its zero value receives no
// files.
type fileSet struct {
	mu   sync.Mutex
	cfg  *FileConfig            // nil: ReceiveFiles not called
	kick chan struct{}          // wakes the receiver
	busy map[string]*directRecv // files coming over a data channel now

	answers p2pAnswers // senders waiting for a direct connection's answer
}

// progress emits "file-progress" events: one every d, or sooner when
// another 5% is done, and always the last.
type progress struct {
	s     *Session
	ev    FileEvent
	peer  string
	d     time.Duration
	last  time.Time
	lastB int64
}

func (p *progress) report(bytes int64) {
	p.ev.Bytes = bytes
	if now := time.Now(); bytes == p.ev.Size || now.Sub(p.last) >= p.d || bytes-p.lastB >= p.ev.Size/20 {
		p.last, p.lastB = now, bytes
		ev := p.ev
		p.s.emit(Event{Event: EventFileProgress, Peer: p.peer, FileEvent: &ev})
	}
}

// SendFile sends the file at path to user to (with cfg.Group, to every
// other member of group to) and returns once its chunks are where the
// recipients' devices can fetch them and the offer went. A send of the
// same file (path, size and modification time) to the same recipient
// that was interrupted resumes where it stopped. To one user online with
// a device receiving files it goes directly (filep2p.go), else through the
// login server's store. Refused before any byte of the file leaves: an
// unknown user (ErrUnknownUser) or group, not a contact (ErrNotContact),
// not a regular file or an empty one (ErrNotAFile), a name that cannot name a file
// (im.ErrBadFileName), a file over the login server's size cap or the
// sender's quota of stored files (im.ErrFileTooBig, wrapping the server's
// loginapi.ErrTooLarge or loginapi.ErrQuota).
func (s *Session) SendFile(ctx context.Context, to, path string, cfg SendFileConfig) (FileResult, error) {
	m := s.im
	fail := func(err error) (FileResult, error) {
		return FileResult{}, fmt.Errorf("client: send %q to %s: %w", filepath.Base(path), to, err)
	}
	// Who gets it.
	var recipients []string
	peer, group := to, ""
	if cfg.Group {
		gi, err := s.Group(to)
		if err != nil {
			return fail(err)
		}
		if !gi.Member {
			return fail(ErrNotMember)
		}
		g, err := m.group(gi.ID)
		if err != nil {
			return fail(err)
		}
		group, peer = gi.ID, im.GroupPeer(gi.ID)
		recipients = slices.DeleteFunc(slices.Clone(g.Members), func(u string) bool { return u == s.user })
		if len(recipients) == 0 {
			return fail(fmt.Errorf("the group has no other member: %w", ErrOffline))
		}
	} else {
		if err := identity.CheckUser(to); err != nil {
			return fail(err)
		}
		if _, err := m.devicesOf(ctx, to, true); err != nil {
			for _, e := range []error{ErrUnknownUser, ErrNotContact} {
				if errors.Is(err, e) {
					err = e
				}
			}
			return fail(err)
		}
		recipients = []string{to}
	}
	if len(recipients) > loginapi.MaxFileRecipients {
		return fail(fmt.Errorf("%d recipients, at most %d", len(recipients), loginapi.MaxFileRecipients))
	}
	// What.
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	name := filepath.Base(path)
	switch {
	case !st.Mode().IsRegular(), st.Size() == 0:
		return fail(ErrNotAFile)
	case st.Size() > im.MaxFileSize:
		return fail(fmt.Errorf("%d bytes, at most %d: %w", st.Size(), int64(im.MaxFileSize), im.ErrFileTooBig))
	}
	if err := im.CheckFileName(name); err != nil {
		return fail(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	out := m.findOut(abs, st, to, group)
	if out == nil {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fail(err)
		}
		typ, _, _ := mime.ParseMediaType(mime.TypeByExtension(filepath.Ext(name)))
		offer, err := im.NewFileOffer(name, st.Size(), typ, h.Sum(nil))
		if err != nil {
			if offer == nil && errors.Is(err, im.ErrBadFile) && typ != "" {
				offer, err = im.NewFileOffer(name, st.Size(), "", h.Sum(nil))
			}
			if err != nil {
				return fail(err)
			}
		}
		offer.Preview = preview(f, offer.Type, st.Size())
		out = &outFile{V: fileStateV, Offer: offer, Source: abs, Size: st.Size(), ModTime: st.ModTime().UnixNano(), To: to, Group: group}
		if group != "" {
			out.MID = im.NewMessageID()
		}
	}
	offer := out.Offer
	ev := FileEvent{ID: offer.ID, Name: offer.Name, Type: offer.Type, Size: offer.Size, Direction: FileOut,
		Group: group, Hash: offer.Hash, Recipients: len(recipients)}
	pr := &progress{s: s, ev: ev, peer: peer, d: cmpDur(cfg.ProgressEvery, 250*time.Millisecond)}

	// Directly, when the recipient is online and a device of theirs
	// takes the connection (filep2p.go).
	if group == "" && !cfg.StoreOnly && !offer.Stored {
		if found, err := s.Lookup(ctx, to); err == nil && found.Devices > 0 {
			if err := saveState(fileStatePath(s.c.home.dir, "out", offer.ID), out); err != nil {
				return fail(err)
			}
			if err := m.offer(ctx, out, recipients); err != nil {
				return fail(err)
			}
			route, sent, err := m.sendDirect(ctx, out, f, pr)
			if err == nil {
				out.Offered = true
				if err := saveState(fileStatePath(s.c.home.dir, "out", offer.ID), out); err != nil {
					return fail(err)
				}
				ev.Route, ev.Bytes = route, offer.Size
				if sealed := offer.Size + offer.Chunks()*im.AEADOverhead; sent > sealed {
					ev.Resent = sent - sealed
				}
				s.emit(Event{Event: EventFileSent, Peer: peer, FileEvent: &ev})
				return FileResult{FileEvent: ev}, nil
			}
			if ctx.Err() != nil {
				return fail(err)
			}
			s.c.log.Info("sending a file through the store", "file", offer.ID, "why", err)
		}
	}
	offer.Stored = true
	ev.Route, ev.Stored = RouteStore, true
	pr.ev = ev

	// The store: create (before any byte: the size cap and the quota
	// refuse here), then upload from the first chunk it lacks.
	lc, cred, err := s.c.withCred(ctx)
	if err != nil {
		return fail(err)
	}
	if err := lc.CreateStoredFile(ctx, cred, offer.ID, offer.Size, recipients); err != nil {
		switch {
		case errors.Is(err, loginapi.ErrTooLarge):
			return fail(fmt.Errorf("%w: the login server stores files of up to its size cap (%w)", im.ErrFileTooBig, err))
		case errors.Is(err, loginapi.ErrQuota):
			return fail(fmt.Errorf("%w: over your quota of stored files on the login server (%w)", im.ErrFileTooBig, err))
		case errors.Is(err, loginapi.ErrUnknownUser):
			return fail(fmt.Errorf("%w: %w", ErrUnknownUser, err))
		}
		return fail(err)
	}
	if err := saveState(fileStatePath(s.c.home.dir, "out", offer.ID), out); err != nil {
		return fail(err)
	}
	info, err := lc.StoredFile(ctx, cred, offer.ID)
	if err != nil {
		return fail(err)
	}
	res := FileResult{Resumed: min(info.Have*im.FileChunk, offer.Size)}
	buf := make([]byte, im.FileChunk)
	for i := info.Have; i < offer.Chunks(); i++ {
		n := min(int64(im.FileChunk), offer.Size-i*im.FileChunk)
		if _, err := f.ReadAt(buf[:n], i*im.FileChunk); err != nil {
			return fail(err)
		}
		sealed, err := offer.SealChunk(i, buf[:n])
		if err != nil {
			return fail(err)
		}
		if lc, cred, err = s.c.withCred(ctx); err != nil {
			return fail(err)
		}
		if err := lc.PutChunk(ctx, cred, offer.ID, i, sealed); err != nil {
			return fail(err)
		}
		pr.report(i*im.FileChunk + n)
	}
	if info.Have >= offer.Chunks() {
		pr.report(offer.Size)
	}
	// The file must not have changed while it went.
	if st2, err := f.Stat(); err != nil || st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		return fail(errors.New("the file changed while it was being sent; send it again"))
	}
	// The offer.
	if err := m.offer(ctx, out, recipients); err != nil {
		return fail(err)
	}
	out.Offered = true
	if err := saveState(fileStatePath(s.c.home.dir, "out", offer.ID), out); err != nil {
		return fail(err)
	}
	ev.Bytes = offer.Size
	res.FileEvent = ev
	s.emit(Event{Event: EventFileSent, Peer: peer, FileEvent: &ev})
	return res, nil
}

func cmpDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// findOut returns the state of an earlier send of the same file to the
// same recipient that did not finish, if one was left.
func (m *messenger) findOut(abs string, st os.FileInfo, to, group string) *outFile {
	home := m.s.c.home.dir
	ids, err := stateIDs(home, "out")
	if err != nil {
		return nil
	}
	for _, id := range ids {
		o, err := loadOut(home, id)
		if err == nil && !o.Offered && o.Source == abs && o.Size == st.Size() && o.ModTime == st.ModTime().UnixNano() && o.To == to && o.Group == group {
			return o
		}
	}
	return nil
}

// offer stores the file's entry in the history and sends the offer to
// every recipient's devices and this user's other devices.
func (m *messenger) offer(ctx context.Context, out *outFile, recipients []string) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	s := m.s
	snd, err := m.sender(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	body := &im.FileBody{T: im.FileBodyOffer, Offer: out.Offer}
	if out.Group == "" {
		if out.Seq == 0 {
			if out.Seq, err = m.hist.NextSeq(out.To); err != nil {
				return err
			}
		}
		msg := im.Message{ID: out.Offer.ID, Peer: out.To, FromDevice: m.me, Seq: out.Seq, TS: now.UnixMilli(), Text: im.FileNote(out.Offer)}
		if err := m.hist.AddOutgoing(msg); err != nil && !errors.Is(err, im.ErrDuplicateMessage) {
			return err
		}
		peerDevs, err := m.devicesOf(ctx, out.To, false)
		if err != nil {
			return err
		}
		myDevs, err := m.devicesOf(ctx, s.user, false)
		if err != nil {
			return err
		}
		env, err := im.SealFile(snd, out.To, append(slices.Clone(peerDevs), myDevs...), body, out.Seq, now)
		if err != nil {
			return err
		}
		_, err = m.deliver(ctx, env, peerDevs, myDevs)
		return err
	}
	peer := im.GroupPeer(out.Group)
	if out.Seq == 0 {
		if out.Seq, err = m.hist.NextSeq(peer); err != nil {
			return err
		}
	}
	body.Group, body.MID, body.Seq = out.Group, out.MID, out.Seq
	msg := im.Message{ID: out.MID, Peer: peer, From: s.user, FromDevice: m.me, Seq: out.Seq, TS: now.UnixMilli(), Text: im.FileNote(out.Offer)}
	if err := m.hist.AddOutgoing(msg); err != nil && !errors.Is(err, im.ErrDuplicateMessage) {
		return err
	}
	errs := m.fanOut(ctx, append(slices.Clone(recipients), s.user), func(u string) error {
		_, err := m.sendFileBody(ctx, u, body, now, true)
		return err
	})
	delete(errs, s.user)
	if len(errs) == len(recipients) {
		for _, err := range errs {
			return fmt.Errorf("no member reached: %w", err)
		}
	}
	return m.hist.MarkSent(peer, []string{out.MID})
}

// sendFileBody seals body for user to's devices (this user's other
// devices when to is this user) and sends it: like a message (data
// channel, supernodes, mailbox) when mail is set, else online only.
func (m *messenger) sendFileBody(ctx context.Context, to string, body *im.FileBody, now time.Time, mail bool) (SendResult, error) {
	devs, err := m.devicesOf(ctx, to, false)
	if err != nil {
		return SendResult{}, err
	}
	devs = slices.DeleteFunc(slices.Clone(devs), func(d im.DeviceRecord) bool { return im.SameDevice(d.Key, m.me) })
	if len(devs) == 0 {
		return SendResult{}, nil
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return SendResult{}, err
	}
	env, err := im.SealFile(snd, to, devs, body, 0, now)
	if err != nil {
		return SendResult{}, err
	}
	if mail {
		return m.deliver(ctx, env, devs, nil)
	}
	b, err := env.Encode()
	if err != nil {
		return SendResult{}, err
	}
	if m.s.sendDataChannel(to, b) {
		return SendResult{ID: env.ID}, nil
	}
	_, err = m.s.sendPayload(ctx, to, b)
	return SendResult{ID: env.ID}, err
}
