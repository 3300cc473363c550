package audio

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley/parley/codec"
)

// ramp returns n samples that differ from one another.
func ramp(n int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(i*7 - 3000)
	}
	return pcm
}

// frames cuts pcm into 20 ms frames, zero-padding the last.
func frames(pcm []int16) [][]int16 {
	var out [][]int16
	for len(pcm) > 0 {
		f := make([]int16, codec.FrameSamples)
		n := copy(f, pcm)
		out = append(out, f)
		pcm = pcm[n:]
	}
	return out
}

func raw(pcm []int16) []byte {
	var b bytes.Buffer
	codec.WriteRaw(&b, pcm)
	return b.Bytes()
}

func writeWAVFile(t *testing.T, pcm []int16) string {
	t.Helper()
	var b bytes.Buffer
	if err := codec.WriteWAV(&b, pcm); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "in.wav")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll reads src to its end.
func readAll(t *testing.T, src FrameSource) [][]int16 {
	t.Helper()
	var got [][]int16
	for {
		f, err := src.ReadFrame()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		got = append(got, f)
	}
}

func TestSource(t *testing.T) {
	pcm := ramp(2*codec.FrameSamples + 100)
	tests := []struct {
		name  string
		play  string
		stdin []byte
		want  [][]int16 // nil: no source (silence)
	}{
		{"wav file", writeWAVFile(t, pcm), nil, frames(pcm)},
		{"raw stdin", Stdio, raw(pcm), frames(pcm)},
		{"empty stdin", Stdio, nil, [][]int16{}},
		{"silence", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Open(Config{Play: tt.play, Stdin: bytes.NewReader(tt.stdin)})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			src := a.Source()
			if tt.want == nil {
				if src != nil {
					t.Fatalf("Source() = %T, want nil", src)
				}
				return
			}
			if got := readAll(t, src); !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("got %d frames, want %d (or their samples differ)", len(got), len(tt.want))
			}
		})
	}
}

// Every call plays the file from its start; stdin goes to the first call only.
func TestSourcePerCall(t *testing.T) {
	pcm := ramp(codec.FrameSamples)
	tests := []struct {
		name       string
		cfg        Config
		wantSecond bool
	}{
		{"file again", Config{Play: writeWAVFile(t, pcm)}, true},
		{"stdin once", Config{Play: Stdio, Stdin: bytes.NewReader(raw(pcm))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Open(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if got := readAll(t, a.Source()); len(got) != 1 {
				t.Fatalf("first call: %d frames, want 1", len(got))
			}
			second := a.Source()
			if got := second != nil; got != tt.wantSecond {
				t.Fatalf("second call has a source: %v, want %v", got, tt.wantSecond)
			}
			if second != nil {
				if got := readAll(t, second); len(got) != 1 || !slices.Equal(got[0], pcm) {
					t.Errorf("second call: %d frames, want the file again", len(got))
				}
			}
		})
	}
}

func TestSink(t *testing.T) {
	calls := [][][]int16{frames(ramp(2 * codec.FrameSamples)), frames(ramp(codec.FrameSamples))}
	var all []int16
	for _, c := range calls {
		for _, f := range c {
			all = append(all, f...)
		}
	}
	wavPath := filepath.Join(t.TempDir(), "out.wav")
	tests := []struct {
		name   string
		record string
		// read returns what was recorded, after Close.
		read func(t *testing.T, stdout *bytes.Buffer) []int16
	}{
		{"wav file", wavPath, func(t *testing.T, _ *bytes.Buffer) []int16 {
			f, err := os.Open(wavPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			pcm, err := codec.ReadWAV(f)
			if err != nil {
				t.Fatalf("the recording does not read back: %v", err)
			}
			return pcm
		}},
		{"raw stdout", Stdio, func(t *testing.T, stdout *bytes.Buffer) []int16 {
			return readAllFrames(t, codec.NewRawReader(stdout))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			a, err := Open(Config{Record: tt.record, Stdout: &stdout})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range calls { // one sink per call, one recording
				sink := a.Sink()
				for _, f := range c {
					if err := sink.WriteFrame(f); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if got := tt.read(t, &stdout); !slices.Equal(got, all) {
				t.Errorf("recorded %d samples, want the %d written", len(got), len(all))
			}
		})
	}
}

func readAllFrames(t *testing.T, src FrameSource) []int16 {
	var pcm []int16
	for _, f := range readAll(t, src) {
		pcm = append(pcm, f...)
	}
	return pcm
}

func TestNoSink(t *testing.T) {
	a, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s := a.Sink(); s != nil {
		t.Errorf("Sink() = %T with no Record, want nil", s)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.wav")
	os.WriteFile(corrupt, []byte("RIFF\x10\x00\x00\x00WAVEfmt garbage"), 0o644)
	text := filepath.Join(dir, "notes.wav")
	os.WriteFile(text, []byte("these are not the samples you are looking for"), 0o644)
	missing := filepath.Join(dir, "missing.wav")
	noDir := filepath.Join(dir, "no", "such", "dir", "out.wav")
	tests := []struct {
		name     string
		cfg      Config
		op, want error
		path     string
	}{
		{"missing", Config{Play: missing}, ErrPlay, fs.ErrNotExist, missing},
		{"corrupt", Config{Play: corrupt}, ErrPlay, codec.ErrCorrupt, corrupt},
		{"not a wav", Config{Play: text}, ErrPlay, codec.ErrNotWAV, text},
		{"record nowhere", Config{Record: noDir}, ErrRecord, fs.ErrNotExist, noDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.cfg)
			if !errors.Is(err, tt.op) || !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v and %v", err, tt.op, tt.want)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != tt.path {
				t.Fatalf("Open: %#v, want a *FileError for %s", err, tt.path)
			}
			if got, want := err.Error(), tt.op.Error()+" "+tt.path+": "; !strings.HasPrefix(got, want) {
				t.Errorf("error %q, want it to start with %q", got, want)
			}
		})
	}
}
