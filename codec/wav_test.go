package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
)

// chunk is a RIFF chunk for building test files.
type chunk struct {
	id   string
	size uint32 // 0 = len(body)
	body []byte
}

// wavSpec describes a test WAV file.
type wavSpec struct {
	tag        uint16 // 0 = PCM
	channels   uint16
	rate       uint32
	bits       uint16 // 0 = 16
	blockAlign uint16 // 0 = channels*bits/8
	fmtSize    uint32 // 0 = 16 (40 for extensible)
	subFormat  uint16 // extensible only; 0 = PCM
	before     []chunk
	between    []chunk
	after      []chunk
	data       []byte
	dataSize   *uint32 // nil = len(data)
	riffSize   *uint32 // nil = computed
}

func u32(v uint32) *uint32 { return &v }

func (c chunk) bytes() []byte {
	size := c.size
	if size == 0 {
		size = uint32(len(c.body))
	}
	b := append([]byte(c.id), binary.LittleEndian.AppendUint32(nil, size)...)
	b = append(b, c.body...)
	if len(c.body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func (s wavSpec) bytes() []byte {
	le := binary.LittleEndian
	bits := s.bits
	if bits == 0 {
		bits = 16
	}
	align := s.blockAlign
	if align == 0 {
		align = s.channels * bits / 8
	}
	tag := s.tag
	if tag == 0 {
		tag = wavFormatPCM
	}
	var f []byte
	f = le.AppendUint16(f, tag)
	f = le.AppendUint16(f, s.channels)
	f = le.AppendUint32(f, s.rate)
	f = le.AppendUint32(f, s.rate*uint32(align))
	f = le.AppendUint16(f, align)
	f = le.AppendUint16(f, bits)
	if tag == wavFormatExtensible {
		sub := s.subFormat
		if sub == 0 {
			sub = wavFormatPCM
		}
		f = le.AppendUint16(f, 22)
		f = le.AppendUint16(f, bits)
		f = le.AppendUint32(f, 0)
		f = le.AppendUint16(f, sub)
		f = append(f, wavPCMGUIDTail...)
	}
	if s.fmtSize != 0 && int(s.fmtSize) < len(f) {
		f = f[:s.fmtSize]
	}
	var body []byte
	for _, c := range s.before {
		body = append(body, c.bytes()...)
	}
	body = append(body, chunk{id: "fmt ", body: f}.bytes()...)
	for _, c := range s.between {
		body = append(body, c.bytes()...)
	}
	dsize := uint32(len(s.data))
	if s.dataSize != nil {
		dsize = *s.dataSize
	}
	body = append(body, "data"...)
	body = le.AppendUint32(body, dsize)
	body = append(body, s.data...)
	if len(s.data)%2 == 1 {
		body = append(body, 0)
	}
	for _, c := range s.after {
		body = append(body, c.bytes()...)
	}
	riff := uint32(4 + len(body))
	if s.riffSize != nil {
		riff = *s.riffSize
	}
	out := append([]byte("RIFF"), le.AppendUint32(nil, riff)...)
	out = append(out, "WAVE"...)
	return append(out, body...)
}

// interleave returns s16le bytes of the given channels.
func interleave(chans ...[]int16) []byte {
	var b []byte
	for i := range chans[0] {
		for _, c := range chans {
			b = binary.LittleEndian.AppendUint16(b, uint16(c[i]))
		}
	}
	return b
}

func TestWAVRoundTrip(t *testing.T) {
	pcm := audiotest.Speech(1, 1500*time.Millisecond)
	pcm = append(pcm, 32767, -32768, 0, 1, -1)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, pcm); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.Len(), wavHeaderSize+2*len(pcm); got != want {
		t.Errorf("WriteWAV wrote %d bytes, want %d", got, want)
	}
	got, err := ReadWAV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, pcm) {
		t.Error("ReadWAV(WriteWAV(pcm)) != pcm")
	}

	var empty bytes.Buffer
	if err := WriteWAV(&empty, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadWAV(&empty); err != nil || len(got) != 0 {
		t.Errorf("empty WAV: %d samples, %v; want 0, nil", len(got), err)
	}
}

// failSeeker is a WriteSeeker whose Seek always fails, like a pipe.
type failSeeker struct{ bytes.Buffer }

func (f *failSeeker) Seek(int64, int) (int64, error) { return 0, errors.New("illegal seek") }

func TestWAVWriter(t *testing.T) {
	pcm := audiotest.Speech(2, time.Second)
	parts := [][]int16{pcm[:1000], pcm[1000:1001], nil, pcm[1001:]}

	write := func(t *testing.T, w io.Writer) {
		t.Helper()
		ww, err := NewWAVWriter(w)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			if err := ww.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := ww.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ww.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := ww.Write(pcm[:10]); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close: %v, want ErrClosed", err)
		}
	}
	sizes := func(b []byte) (riff, data uint32) {
		return binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[40:])
	}

	t.Run("file is patched", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.wav")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("JUNK"); err != nil { // header not at offset 0
			t.Fatal(err)
		}
		write(t, f)
		// Close must not close the file, and must leave it at the end.
		if _, err := f.WriteString("TAIL"); err != nil {
			t.Fatalf("file unusable after WAVWriter.Close: %v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = b[4 : len(b)-4]
		riff, data := sizes(b)
		if want := uint32(2 * len(pcm)); data != want || riff != want+36 {
			t.Errorf("sizes riff %d data %d, want %d %d", riff, data, want+36, want)
		}
		got, err := ReadWAV(bytes.NewReader(b))
		if err != nil || !slices.Equal(got, pcm) {
			t.Errorf("ReadWAV: %d samples, %v; want the %d written", len(got), err, len(pcm))
		}
	})
	for name, w := range map[string]interface {
		io.Writer
		Bytes() []byte
	}{"not a seeker": &bytes.Buffer{}, "seek fails": &failSeeker{}} {
		t.Run(name, func(t *testing.T) {
			write(t, w)
			riff, data := sizes(w.Bytes())
			if riff != wavUnknownSize || data != wavUnknownSize {
				t.Errorf("sizes riff %#x data %#x, want 0xFFFFFFFF placeholders", riff, data)
			}
			got, err := ReadWAV(bytes.NewReader(w.Bytes()))
			if err != nil || !slices.Equal(got, pcm) {
				t.Errorf("ReadWAV: %d samples, %v; want the %d written", len(got), err, len(pcm))
			}
		})
	}
}

type errWriter struct{ n int }

func (e *errWriter) Write(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.ErrShortWrite
	}
	e.n--
	return len(p), nil
}

func TestWAVWriterErrors(t *testing.T) {
	if _, err := NewWAVWriter(&errWriter{}); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("NewWAVWriter on failing writer: %v", err)
	}
	w, err := NewWAVWriter(&errWriter{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(make([]int16, 10)); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("Write: %v, want ErrShortWrite", err)
	}
	if err := w.Write(make([]int16, 10)); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("second Write: %v, want the sticky error", err)
	}
	if err := WriteWAV(&errWriter{}, make([]int16, 10)); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("WriteWAV: %v, want ErrShortWrite", err)
	}
}

func TestReadWAVRatesAndChannels(t *testing.T) {
	for _, rate := range []int{8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000, 192000} {
		for _, channels := range []int{1, 2} {
			tone := sine(1000, 10000, rate, rate) // 1 s of 1 kHz
			var data []byte
			if channels == 1 {
				data = interleave(tone)
			} else {
				data = interleave(tone, tone)
			}
			spec := wavSpec{channels: uint16(channels), rate: uint32(rate), data: data}
			got, err := ReadWAV(bytes.NewReader(spec.bytes()))
			if err != nil {
				t.Errorf("%d Hz x%d: %v", rate, channels, err)
				continue
			}
			if len(got) != SampleRate {
				t.Errorf("%d Hz x%d: %d samples, want %d (1 s)", rate, channels, len(got), SampleRate)
				continue
			}
			mid := got[480 : len(got)-480] // away from the edges
			if f := zeroCrossingFreq(mid, SampleRate); math.Abs(f-1000) > 5 {
				t.Errorf("%d Hz x%d: zero crossings say %.1f Hz, want 1000", rate, channels, f)
			}
			if r := goertzelRatio(mid, 1000, SampleRate); r < 0.99 {
				t.Errorf("%d Hz x%d: %.4f of the energy at 1 kHz, want > 0.99", rate, channels, r)
			}
			if db := 20 * math.Log10(rms(mid)/(10000/math.Sqrt2)); math.Abs(db) > 0.2 {
				t.Errorf("%d Hz x%d: level off by %.2f dB", rate, channels, db)
			}
		}
	}
}

func TestReadWAVStereoAverage(t *testing.T) {
	l := slices.Repeat([]int16{1000, 32767, -32768}, 100)
	r := slices.Repeat([]int16{3000, 32767, -32767}, 100)
	spec := wavSpec{channels: 2, rate: 48000, data: interleave(l, r)}
	got, err := ReadWAV(bytes.NewReader(spec.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Repeat([]int16{2000, 32767, -32767}, 100)
	if !slices.Equal(got, want) {
		t.Errorf("stereo average = %v..., want %v...", got[:3], want[:3])
	}
}

func TestReadWAVChunks(t *testing.T) {
	pcm := []int16{1, -2, 3, -4, 5, 300, -300}
	list := chunk{id: "LIST", body: []byte("INFOISFT\x05\x00\x00\x00abcd\x00")} // odd size
	tests := []struct {
		name string
		spec wavSpec
	}{
		{"plain", wavSpec{}},
		{"odd LIST before fmt", wavSpec{before: []chunk{list}}},
		{"odd chunks between", wavSpec{between: []chunk{{id: "fact", body: []byte{1, 2, 3, 4}}, {id: "junk", body: []byte{9}}, list}}},
		{"chunks after data", wavSpec{after: []chunk{list, {id: "cue ", size: 1 << 30}}}},
		{"extensible PCM", wavSpec{tag: wavFormatExtensible}},
		{"fmt with cbSize", wavSpec{fmtSize: 18}},
		{"streaming sizes", wavSpec{dataSize: u32(wavUnknownSize), riffSize: u32(wavUnknownSize)}},
		{"data size 0, riff unknown", wavSpec{dataSize: u32(0), riffSize: u32(wavUnknownSize)}},
		{"wrong riff size", wavSpec{riffSize: u32(12)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			s.channels, s.rate, s.data = 1, 48000, interleave(pcm)
			got, err := ReadWAV(bytes.NewReader(s.bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, pcm) {
				t.Errorf("got %v, want %v", got, pcm)
			}
		})
	}
	// A streaming file cut mid-sample loses only the partial sample.
	s := wavSpec{channels: 1, rate: 48000, data: interleave(pcm), dataSize: u32(wavUnknownSize)}
	b := s.bytes()
	got, err := ReadWAV(bytes.NewReader(b[:len(b)-1]))
	if err != nil || !slices.Equal(got, pcm[:len(pcm)-1]) {
		t.Errorf("cut stream: %v, %v; want %v", got, err, pcm[:len(pcm)-1])
	}
}

// errReader fails after its data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReadWAVErrors(t *testing.T) {
	mono := func(s wavSpec) []byte {
		if s.channels == 0 {
			s.channels = 1
		}
		if s.rate == 0 {
			s.rate = 16000
		}
		if s.data == nil {
			s.data = make([]byte, 200)
		}
		return s.bytes()
	}
	good := mono(wavSpec{})
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"empty", nil, ErrNotWAV},
		{"text", []byte("hello, this is not audio at all"), ErrNotWAV},
		{"short garbage", []byte("RX"), ErrNotWAV},
		{"truncated RIFF id", []byte("RIF"), ErrCorrupt},
		{"truncated header", []byte("RIFF\x10\x00\x00"), ErrCorrupt},
		{"AVI", append([]byte("RIFF\x04\x00\x00\x00AVI "), good[12:]...), ErrNotWAV},
		{"RIFX", append([]byte("RIFX"), good[4:]...), ErrUnsupported},
		{"RF64", append([]byte("RF64"), good[4:]...), ErrUnsupported},
		{"8-bit", mono(wavSpec{bits: 8}), ErrUnsupported},
		{"24-bit", mono(wavSpec{bits: 24}), ErrUnsupported},
		{"32-bit", mono(wavSpec{bits: 32}), ErrUnsupported},
		{"float", mono(wavSpec{tag: 3, bits: 32}), ErrUnsupported},
		{"a-law", mono(wavSpec{tag: 6, bits: 8}), ErrUnsupported},
		{"extensible float", mono(wavSpec{tag: wavFormatExtensible, subFormat: 3}), ErrUnsupported},
		{"extensible 24-bit", mono(wavSpec{tag: wavFormatExtensible, bits: 24}), ErrUnsupported},
		{"extensible short fmt", mono(wavSpec{tag: wavFormatExtensible, fmtSize: 18}), ErrCorrupt},
		{"0 channels", wavSpec{rate: 16000, blockAlign: 2, data: make([]byte, 200)}.bytes(), ErrUnsupported},
		{"65535 channels", mono(wavSpec{channels: 0xffff, blockAlign: 2}), ErrUnsupported},
		{"3 channels", mono(wavSpec{channels: 3}), ErrUnsupported},
		{"rate 4000", mono(wavSpec{rate: 4000}), ErrUnsupported},
		{"rate 7999", mono(wavSpec{rate: 7999}), ErrUnsupported},
		{"rate 192001", mono(wavSpec{rate: 192001}), ErrUnsupported},
		{"fmt too short", mono(wavSpec{fmtSize: 14}), ErrCorrupt},
		{"block align lies", mono(wavSpec{blockAlign: 4}), ErrCorrupt},
		{"data truncated", good[:len(good)-50], ErrCorrupt},
		{"data size lies", mono(wavSpec{dataSize: u32(100000)}), ErrCorrupt},
		{"data size odd", mono(wavSpec{data: make([]byte, 201)}), ErrCorrupt},
		{"stereo data size not whole frames", mono(wavSpec{channels: 2, data: make([]byte, 202)}), ErrCorrupt},
		{"data size over cap", mono(wavSpec{dataSize: u32(MaxWAVDataBytes + 2)}), ErrTooLarge},
		{"output over cap", mono(wavSpec{rate: 8000, dataSize: u32(MaxWAVSamples/6*2 + 4)}), ErrTooLarge},
		{"no data chunk", good[:36], ErrCorrupt},
		{"no fmt chunk", append([]byte("RIFF\x0c\x00\x00\x00WAVEdata\x00\x00\x00\x00"), 0), ErrCorrupt},
		{"chunk size lies", mono(wavSpec{before: []chunk{{id: "LIST", size: 1 << 30, body: []byte("x")}}}), ErrCorrupt},
		{"fmt size lies", append(good[:16], 0xff, 0xff, 0xff, 0x7f, 1, 0), ErrCorrupt},
		{"two fmt chunks", mono(wavSpec{between: []chunk{{id: "fmt ", body: good[20:36]}}}), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadWAV(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadWAV error = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("ReadWAV returned %d samples with an error", len(got))
			}
		})
	}
	t.Run("read error passes through", func(t *testing.T) {
		_, err := ReadWAV(&errReader{bytes.NewReader(good[:100]), errBoom})
		if !errors.Is(err, errBoom) {
			t.Errorf("ReadWAV error = %v, want %v", err, errBoom)
		}
	})
}

func TestReadWAVDoesNotTrustSizes(t *testing.T) {
	// Headers claiming ~1 GiB of data (within the cap) on a tiny input
	// must fail without allocating anything like that.
	in := wavSpec{channels: 1, rate: 48000, data: make([]byte, 100), dataSize: u32(MaxWAVDataBytes - 2)}.bytes()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadWAV(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error = %v, want ErrCorrupt", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("allocated %d bytes for a %d-byte file", alloc, len(in))
	}
}
