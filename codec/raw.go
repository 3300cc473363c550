package codec

import (
	"errors"
	"fmt"
	"io"
)

// rawChunk is how many samples writeS16LE converts per Write call.
const rawChunk = 8 * FrameSamples

// FrameReader delivers audio as 20 ms frames of FrameSamples samples, from
// a raw s16le 48 kHz mono stream (NewRawReader, e.g. stdin for `--play -`)
// or from samples in memory (NewPCMFrameReader, e.g. a file read with
// ReadWAV). The final partial frame is zero-padded; after it ReadFrame
// returns io.EOF. A FrameReader is not safe for concurrent use.
type FrameReader struct {
	r   io.Reader // raw source, or nil for pcm
	pcm []int16   // in-memory source: samples not yet returned
	buf []byte
	eof bool
}

// NewRawReader returns a FrameReader over raw signed 16-bit little-endian
// 48 kHz mono samples. ReadFrame blocks until a whole frame has arrived or
// the stream ends; a trailing odd byte is ignored.
func NewRawReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, 2*FrameSamples)}
}

// NewPCMFrameReader returns a FrameReader over 48 kHz mono samples in
// memory. It does not copy pcm; the frames it returns are copies.
func NewPCMFrameReader(pcm []int16) *FrameReader {
	return &FrameReader{pcm: pcm}
}

// ReadFrame returns the next frame of exactly FrameSamples samples (a
// fresh slice), or io.EOF when the input is exhausted. Read errors of the
// underlying reader are wrapped.
func (f *FrameReader) ReadFrame() ([]int16, error) {
	if f.eof {
		return nil, io.EOF
	}
	frame := make([]int16, FrameSamples)
	if f.r == nil {
		if len(f.pcm) == 0 {
			f.eof = true
			return nil, io.EOF
		}
		n := copy(frame, f.pcm)
		f.pcm = f.pcm[n:]
		return frame, nil
	}
	n, err := io.ReadFull(f.r, f.buf)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		f.eof = true
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		f.eof = true
		if n < 2 {
			return nil, io.EOF
		}
	default:
		return nil, fmt.Errorf("codec: read raw: %w", err)
	}
	for i := 0; i+1 < n; i += 2 {
		frame[i/2] = int16(uint16(f.buf[i]) | uint16(f.buf[i+1])<<8)
	}
	return frame, nil
}

// WriteRaw writes pcm as raw signed 16-bit little-endian samples (for
// `--record -` on stdout).
func WriteRaw(w io.Writer, pcm []int16) error {
	if err := writeS16LE(w, pcm); err != nil {
		return fmt.Errorf("codec: write raw: %w", err)
	}
	return nil
}

// writeS16LE writes pcm in bounded chunks.
func writeS16LE(w io.Writer, pcm []int16) error {
	buf := make([]byte, 0, 2*min(len(pcm), rawChunk))
	for len(pcm) > 0 {
		n := min(len(pcm), rawChunk)
		buf = appendS16LE(buf[:0], pcm[:n])
		if _, err := w.Write(buf); err != nil {
			return err
		}
		pcm = pcm[n:]
	}
	return nil
}
