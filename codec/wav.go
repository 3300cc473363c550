package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Limits of ReadWAV. Sizes in the header are checked against them before
// anything is read, and memory grows only with bytes actually read.
const (
	// MaxWAVDataBytes is the largest data chunk ReadWAV reads (1 GiB).
	MaxWAVDataBytes = 1 << 30
	// MaxWAVSamples is the most 48 kHz mono samples ReadWAV returns
	// (2^29 samples, about 3 h 6 min, 1 GiB of int16).
	MaxWAVSamples = 1 << 29
	// MinWAVRate and MaxWAVRate bound the sample rates ReadWAV accepts.
	MinWAVRate = 8000
	MaxWAVRate = 192000
)

const (
	wavFormatPCM        = 1
	wavFormatExtensible = 0xFFFE
	wavHeaderSize       = 44
	// wavUnknownSize is the size placeholder of a WAV stream whose length
	// was not known when its header was written.
	wavUnknownSize = 0xFFFFFFFF
)

// wavPCMGUIDTail is KSDATAFORMAT_SUBTYPE_PCM without its first two bytes
// (the format code).
const wavPCMGUIDTail = "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xAA\x00\x38\x9B\x71"

type wavFormat struct {
	channels int
	rate     int
}

// ReadWAV reads a whole RIFF/WAVE file and returns its audio as 48 kHz mono
// samples: stereo is averaged to mono and other rates are converted with
// Resample.
//
// Accepted: integer PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with the PCM
// sub-format), 16 bits per sample, 1 or 2 channels, any rate from 8000 to
// 192000 Hz. Chunks other than "fmt " and "data" (LIST, fact, cue, ...)
// are skipped, honouring the pad byte after odd-sized chunks; reading stops
// at the end of the data chunk. A data size (or RIFF size with data size 0)
// of 0xFFFFFFFF, as written by streaming tools and by WAVWriter on an
// unseekable writer, means "to the end of the input"; a final partial
// sample frame of such a stream is dropped.
//
// Errors wrap ErrNotWAV (not RIFF/WAVE), ErrUnsupported (other encodings,
// 0 or more than 2 channels, rate out of range, RF64/RIFX), ErrCorrupt
// (truncated, or sizes that lie) or ErrTooLarge (more than MaxWAVDataBytes
// of data or MaxWAVSamples of output); read errors are wrapped as they are.
func ReadWAV(r io.Reader) ([]int16, error) {
	pcm, err := readWAV(r)
	if err != nil {
		return nil, fmt.Errorf("codec: read wav: %w", err)
	}
	return pcm, nil
}

func readWAV(r io.Reader) ([]int16, error) {
	var hdr [12]byte
	n, err := io.ReadFull(r, hdr[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch id := string(hdr[:4]); {
	case n >= 4 && (id == "RF64" || id == "RIFX"):
		return nil, fmt.Errorf("%s container: %w", id, ErrUnsupported)
	case n < 4 || id != "RIFF":
		if n < 4 && bytes.HasPrefix([]byte("RIFF"), hdr[:n]) && n > 0 {
			return nil, fmt.Errorf("header: %w", ErrCorrupt)
		}
		return nil, ErrNotWAV
	case n < 12:
		return nil, fmt.Errorf("header: %w", ErrCorrupt)
	case string(hdr[8:12]) != "WAVE":
		return nil, ErrNotWAV
	}
	riffSize := binary.LittleEndian.Uint32(hdr[4:8])

	var f *wavFormat
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, eofCorrupt(err, "no data chunk")
		}
		id := string(ch[:4])
		size := binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if f != nil {
				return nil, fmt.Errorf("second fmt chunk: %w", ErrCorrupt)
			}
			if f, err = readFmt(r, size); err != nil {
				return nil, err
			}
		case "data":
			if f == nil {
				return nil, fmt.Errorf("data chunk before fmt chunk: %w", ErrCorrupt)
			}
			stream := size == wavUnknownSize || (size == 0 && (riffSize == wavUnknownSize || riffSize == 0))
			return readData(r, f, size, stream)
		default:
			skip := int64(size) + int64(size&1)
			if m, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, eofCorrupt(err, fmt.Sprintf("chunk %q: %d of %d bytes", id, m, skip))
			}
		}
	}
}

// eofCorrupt maps an unexpected end of input to ErrCorrupt.
func eofCorrupt(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: truncated: %w", what, ErrCorrupt)
	}
	return err
}

func readFmt(r io.Reader, size uint32) (*wavFormat, error) {
	if size < 16 {
		return nil, fmt.Errorf("fmt chunk of %d bytes: %w", size, ErrCorrupt)
	}
	var b [40]byte
	head := min(size, uint32(len(b)))
	if _, err := io.ReadFull(r, b[:head]); err != nil {
		return nil, eofCorrupt(err, "fmt chunk")
	}
	if rest := int64(size-head) + int64(size&1); rest > 0 {
		if _, err := io.CopyN(io.Discard, r, rest); err != nil {
			return nil, eofCorrupt(err, "fmt chunk")
		}
	}
	le := binary.LittleEndian
	tag := le.Uint16(b[0:])
	channels := int(le.Uint16(b[2:]))
	rate := le.Uint32(b[4:])
	blockAlign := int(le.Uint16(b[12:]))
	bits := int(le.Uint16(b[14:]))
	switch tag {
	case wavFormatPCM:
	case wavFormatExtensible:
		if head < 40 || le.Uint16(b[16:]) < 22 {
			return nil, fmt.Errorf("short WAVE_FORMAT_EXTENSIBLE fmt chunk: %w", ErrCorrupt)
		}
		sub := le.Uint16(b[24:])
		if sub != wavFormatPCM || string(b[26:40]) != wavPCMGUIDTail {
			return nil, fmt.Errorf("extensible sub-format is not PCM: %w", ErrUnsupported)
		}
		if valid := int(le.Uint16(b[18:])); valid > bits {
			return nil, fmt.Errorf("%d valid bits in %d-bit container: %w", valid, bits, ErrCorrupt)
		}
	default:
		return nil, fmt.Errorf("format tag %#04x: %w", tag, ErrUnsupported)
	}
	if bits != 16 {
		return nil, fmt.Errorf("%d bits per sample: %w", bits, ErrUnsupported)
	}
	if channels < 1 || channels > 2 {
		return nil, fmt.Errorf("%d channels: %w", channels, ErrUnsupported)
	}
	if rate < MinWAVRate || rate > MaxWAVRate {
		return nil, fmt.Errorf("sample rate %d: %w", rate, ErrUnsupported)
	}
	if blockAlign != 2*channels {
		return nil, fmt.Errorf("block align %d for %d channels: %w", blockAlign, channels, ErrCorrupt)
	}
	return &wavFormat{channels: channels, rate: int(rate)}, nil
}

// outSamples is the number of 48 kHz samples frames input frames become.
func outSamples(frames int64, rate int) int64 {
	return frames * SampleRate / int64(rate)
}

func readData(r io.Reader, f *wavFormat, size uint32, stream bool) ([]int16, error) {
	block := int64(2 * f.channels)
	limit := int64(MaxWAVDataBytes)
	if !stream {
		if int64(size) > MaxWAVDataBytes || outSamples(int64(size)/block, f.rate) > MaxWAVSamples {
			return nil, fmt.Errorf("data chunk of %d bytes: %w", size, ErrTooLarge)
		}
		if int64(size)%block != 0 {
			return nil, fmt.Errorf("data chunk of %d bytes is not whole %d-byte frames: %w", size, block, ErrCorrupt)
		}
		limit = int64(size)
	}
	// Grow only as bytes arrive: never trust the header for allocation.
	var mono []int16
	buf := make([]byte, 64*1024-(64*1024)%int(block))
	var total int64
	for total < limit {
		want := min(int64(len(buf)), limit-total)
		n, err := io.ReadFull(r, buf[:want])
		whole := n - n%int(block)
		for i := 0; i < whole; i += int(block) {
			s := int32(int16(binary.LittleEndian.Uint16(buf[i:])))
			if f.channels == 2 {
				s = (s + int32(int16(binary.LittleEndian.Uint16(buf[i+2:])))) / 2
			}
			mono = append(mono, int16(s))
		}
		total += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if !stream {
					return nil, fmt.Errorf("data chunk: %d of %d bytes: %w", total, size, ErrCorrupt)
				}
				break
			}
			return nil, err
		}
		if stream && total >= limit {
			// More than the cap, unless the stream ends exactly here.
			var one [1]byte
			if m, _ := io.ReadFull(r, one[:]); m > 0 {
				return nil, fmt.Errorf("data stream over %d bytes: %w", limit, ErrTooLarge)
			}
		}
		if outSamples(int64(len(mono)), f.rate) > MaxWAVSamples {
			return nil, fmt.Errorf("over %d output samples: %w", MaxWAVSamples, ErrTooLarge)
		}
	}
	return Resample(mono, f.rate, SampleRate), nil
}

// WAVWriter streams 48 kHz mono 16-bit PCM into a WAV file. The header is
// written by NewWAVWriter; Close fills in the RIFF and data sizes when the
// writer is an io.WriteSeeker that can really seek (a file). Otherwise (a
// pipe, stdout, a socket) the sizes stay 0xFFFFFFFF, which ReadWAV and
// common tools read as "until end of stream". A WAVWriter is not safe for
// concurrent use.
type WAVWriter struct {
	w      io.Writer
	ws     io.WriteSeeker // nil if the writer cannot seek
	start  int64          // offset of the header in ws
	data   int64          // data bytes written
	buf    []byte
	closed bool
	err    error // sticky write error
}

// NewWAVWriter writes a WAV header for 48 kHz mono 16-bit PCM to w and
// returns a writer for the samples.
func NewWAVWriter(w io.Writer) (*WAVWriter, error) {
	ww := &WAVWriter{w: w}
	if ws, ok := w.(io.WriteSeeker); ok {
		if off, err := ws.Seek(0, io.SeekCurrent); err == nil {
			ww.ws, ww.start = ws, off
		}
	}
	hdr := wavHeader(wavUnknownSize)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("codec: new wav writer: %w", err)
	}
	return ww, nil
}

// wavHeader returns a canonical 44-byte header; dataSize 0xFFFFFFFF also
// makes the RIFF size 0xFFFFFFFF.
func wavHeader(dataSize uint32) []byte {
	riffSize := uint32(wavUnknownSize)
	if dataSize != wavUnknownSize {
		riffSize = dataSize + wavHeaderSize - 8
	}
	b := make([]byte, 0, wavHeaderSize)
	le := binary.LittleEndian
	b = append(b, "RIFF"...)
	b = le.AppendUint32(b, riffSize)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, wavFormatPCM)
	b = le.AppendUint16(b, Channels)
	b = le.AppendUint32(b, SampleRate)
	b = le.AppendUint32(b, SampleRate*Channels*2)
	b = le.AppendUint16(b, Channels*2)
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.AppendUint32(b, dataSize)
	return b
}

// Write appends samples.
func (w *WAVWriter) Write(pcm []int16) error {
	if w.closed {
		return fmt.Errorf("codec: write wav: %w", ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	w.buf = appendS16LE(w.buf[:0], pcm)
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("codec: write wav: %w", err)
		return w.err
	}
	w.data += int64(len(w.buf))
	return nil
}

// Close finishes the file, patching the header sizes if the writer can
// seek (sizes too big for WAV's 32-bit fields are left as 0xFFFFFFFF). It
// does not close the underlying writer. Closing twice is a no-op.
func (w *WAVWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err != nil || w.ws == nil || w.data > math.MaxUint32-wavHeaderSize {
		return w.err
	}
	le := binary.LittleEndian
	patch := func(off int64, v uint32) error {
		if _, err := w.ws.Seek(w.start+off, io.SeekStart); err != nil {
			return err
		}
		_, err := w.ws.Write(le.AppendUint32(nil, v))
		return err
	}
	if err := patch(4, uint32(w.data)+wavHeaderSize-8); err != nil {
		return fmt.Errorf("codec: close wav: %w", err)
	}
	if err := patch(40, uint32(w.data)); err != nil {
		return fmt.Errorf("codec: close wav: %w", err)
	}
	if _, err := w.ws.Seek(w.start+wavHeaderSize+w.data, io.SeekStart); err != nil {
		return fmt.Errorf("codec: close wav: %w", err)
	}
	return nil
}

// WriteWAV writes pcm (48 kHz mono) as a complete WAV file with exact
// sizes; w need not seek.
func WriteWAV(w io.Writer, pcm []int16) error {
	if int64(len(pcm))*2 > math.MaxUint32-wavHeaderSize {
		return fmt.Errorf("codec: write wav: %d samples: %w", len(pcm), ErrTooLarge)
	}
	if _, err := w.Write(wavHeader(uint32(len(pcm) * 2))); err != nil {
		return fmt.Errorf("codec: write wav: %w", err)
	}
	if err := writeS16LE(w, pcm); err != nil {
		return fmt.Errorf("codec: write wav: %w", err)
	}
	return nil
}

func appendS16LE(b []byte, pcm []int16) []byte {
	for _, s := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}
