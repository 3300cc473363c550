package client

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
)

// sink is where the chunks of one incoming file go, whichever way they
// come (the store, a data channel): its .part file in the download
// directory, locked (one writer per file, across processes), and its
// state, recorded every syncEvery chunks after an fsync.
type sink struct {
	m         *messenger
	f         *inFile
	pr        *progress
	route     string
	pf, cf    *os.File
	statePath string
	part      string
	unsynced  int
	done      int64
	cb        [8]byte
}

// openSink opens f's .part file (in f.Dir, or cfg.Dir for a file not
// started yet) and its counter of fetched bytes.
func (m *messenger) openSink(cfg FileConfig, f *inFile, pr *progress) (*sink, error) {
	k := &sink{m: m, f: f, pr: pr, statePath: fileStatePath(m.s.c.home.dir, "in", f.key())}
	if f.Dir == "" {
		f.Dir = cfg.Dir
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return nil, err
	}
	k.part = partPath(f.Dir, f.key())
	pf, err := os.OpenFile(k.part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// One writer at a time per file (several processes may run on one
	// home; a data channel and the store in one).
	if err := syscall.Flock(int(pf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pf.Close()
		return nil, fmt.Errorf("the file is being received already: %w", err)
	}
	if st, err := pf.Stat(); err == nil && st.Size() == 0 && f.onDisk() > 0 {
		f.Have = nil // the .part file was removed: from the start
	}
	// The bytes fetched are counted in a file of their own, written (not
	// synced) at every chunk: a killed process loses none of the count,
	// so a resume reports what it fetched again.
	cf, err := os.OpenFile(strings.TrimSuffix(k.statePath, ".json")+".fetched", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		pf.Close()
		return nil, err
	}
	if n, _ := cf.ReadAt(k.cb[:], 0); n == 8 {
		f.Fetched = max(f.Fetched, int64(binary.BigEndian.Uint64(k.cb[:])))
	}
	k.pf, k.cf = pf, cf
	k.done = f.onDisk()
	pr.report(k.done)
	return k, nil
}

func (k *sink) close() {
	k.pf.Close()
	k.cf.Close()
}

// save fsyncs the .part file and records the chunks on disk.
func (k *sink) save() error {
	if err := k.pf.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", k.f.Dir, err)
	}
	return saveState(k.statePath, k.f)
}

// put checks sealed chunk i and writes it.
func (k *sink) put(i int64, sealed []byte) error {
	f, o := k.f, k.f.Offer
	f.Fetched += int64(len(sealed))
	binary.BigEndian.PutUint64(k.cb[:], uint64(f.Fetched))
	k.cf.WriteAt(k.cb[:], 0)
	if f.has(i) {
		return nil
	}
	plain, err := o.OpenChunk(i, sealed)
	if err != nil {
		k.save()
		return permanent{fmt.Errorf("chunk %d does not open: %w", i, err)}
	}
	if _, err := k.pf.WriteAt(plain, i*im.FileChunk); err != nil {
		k.save() // what was written before stays resumable
		return fmt.Errorf("writing %s: %w", f.Dir, err)
	}
	f.set(i)
	k.done += int64(len(plain))
	if k.unsynced++; k.unsynced >= syncEvery {
		k.unsynced = 0
		if err := k.save(); err != nil {
			return err
		}
	}
	k.pr.report(k.done)
	return nil
}

// complete reports whether every chunk is on disk.
func (k *sink) complete() bool { return k.f.missing() == k.f.Offer.Chunks() }

// finish checks the whole file against the hash its sender signed, gives
// it its name, reports it (then calls placed, if set), and tells the
// store and the sender.
func (k *sink) finish(ctx context.Context, placed func()) error {
	m, f, o := k.m, k.f, k.f.Offer
	s := m.s
	if err := k.save(); err != nil {
		return err
	}
	if !k.complete() {
		return fmt.Errorf("%s: %s of %s on disk", o.Name, im.HumanSize(f.onDisk()), im.HumanSize(o.Size))
	}
	if err := k.pf.Truncate(o.Size); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(k.pf, 0, o.Size)); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != o.Hash {
		os.Remove(k.part)
		f.Have = nil
		return permanent{fmt.Errorf("%s: %w", o.Name, im.ErrFileHash)}
	}
	final, err := placeFile(f.Dir, im.SafeFileName(o.Name), k.part)
	if err != nil {
		return err
	}
	os.Remove(k.part)
	os.Remove(k.cf.Name())
	f.Done, f.Path = true, final
	if err := saveState(k.statePath, f); err != nil {
		s.c.log.Warn("saving a file's state", "id", o.ID, "err", err)
	}
	ev := k.pr.ev
	ev.Bytes, ev.Path, ev.Hash = o.Size, final, o.Hash
	if sealed := o.Size + o.Chunks()*im.AEADOverhead; f.Fetched > sealed {
		ev.Resent = f.Fetched - sealed
	}
	s.emit(Event{Event: EventFile, Peer: k.pr.peer, FileEvent: &ev})
	if placed != nil {
		placed()
	}
	// The store keeps it no longer for this user; the sender hears.
	if o.Stored {
		if lc, cred, err := s.c.withCred(ctx); err == nil {
			if err := lc.DeleteStoredFile(ctx, cred, o.ID); err != nil && !errors.Is(err, loginapi.ErrUnknownFile) {
				s.c.log.Warn("deleting a stored file", "id", o.ID, "err", err)
			}
		}
	}
	if f.From != s.user {
		if _, err := m.sendFileBody(ctx, f.From, &im.FileBody{T: im.FileBodyDone, File: o.ID}, time.Now(), true); err != nil && ctx.Err() == nil {
			s.c.log.Warn("telling the sender a file arrived", "to", f.From, "err", err)
		}
	}
	return nil
}
