package codec

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

func ramp(n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(i*37 - 20000)
	}
	return out
}

func readAll(t *testing.T, f *FrameReader) ([][]int16, error) {
	t.Helper()
	var out [][]int16
	for {
		fr, err := f.ReadFrame()
		if err != nil {
			return out, err
		}
		if len(fr) != FrameSamples {
			t.Fatalf("frame of %d samples, want %d", len(fr), FrameSamples)
		}
		out = append(out, fr)
	}
}

func TestFrameReaders(t *testing.T) {
	tests := []struct {
		name       string
		samples    int
		wantFrames int
	}{
		{"empty", 0, 0},
		{"one sample", 1, 1},
		{"one frame", FrameSamples, 1},
		{"2.5 frames", FrameSamples * 5 / 2, 3},
		{"10 frames", 10 * FrameSamples, 10},
	}
	for _, tt := range tests {
		pcm := ramp(tt.samples)
		want := slices.Concat(pcm, make([]int16, tt.wantFrames*FrameSamples-tt.samples))
		var raw bytes.Buffer
		if err := WriteRaw(&raw, pcm); err != nil {
			t.Fatal(err)
		}
		if raw.Len() != 2*tt.samples {
			t.Errorf("%s: WriteRaw wrote %d bytes, want %d", tt.name, raw.Len(), 2*tt.samples)
		}
		readers := map[string]*FrameReader{
			"raw":       NewRawReader(&raw),
			"in memory": NewPCMFrameReader(pcm),
		}
		for kind, r := range readers {
			got, err := readAll(t, r)
			if err != io.EOF {
				t.Errorf("%s %s: error %v, want io.EOF", tt.name, kind, err)
			}
			if len(got) != tt.wantFrames {
				t.Errorf("%s %s: %d frames, want %d", tt.name, kind, len(got), tt.wantFrames)
				continue
			}
			if !slices.Equal(concat(got), want) {
				t.Errorf("%s %s: samples differ (final frame must be zero-padded)", tt.name, kind)
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Errorf("%s %s: ReadFrame after EOF = %v, want io.EOF", tt.name, kind, err)
			}
		}
	}
}

func TestRawReaderOddByteAndErrors(t *testing.T) {
	b := append(appendS16LE(nil, []int16{1, 2, 3}), 0x7f)
	got, err := readAll(t, NewRawReader(bytes.NewReader(b)))
	if err != io.EOF || len(got) != 1 || !slices.Equal(got[0][:4], []int16{1, 2, 3, 0}) {
		t.Errorf("odd trailing byte: %v, %v", got, err)
	}
	if got, err := readAll(t, NewRawReader(bytes.NewReader([]byte{5}))); err != io.EOF || len(got) != 0 {
		t.Errorf("single byte: %d frames, %v; want 0, io.EOF", len(got), err)
	}
	boom := errors.New("boom")
	_, err = NewRawReader(&errReader{bytes.NewReader(make([]byte, 10)), boom}).ReadFrame()
	if !errors.Is(err, boom) {
		t.Errorf("read error = %v, want %v", err, boom)
	}
	if err := WriteRaw(&errWriter{}, []int16{1}); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("WriteRaw error = %v, want ErrShortWrite", err)
	}
}

func TestPCMFrameReaderCopies(t *testing.T) {
	pcm := ramp(FrameSamples)
	f, _ := NewPCMFrameReader(pcm).ReadFrame()
	f[0] = 42
	if pcm[0] == 42 {
		t.Error("ReadFrame returned the caller's buffer, want a copy")
	}
}
