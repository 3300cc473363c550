package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func FuzzReadWAV(f *testing.F) {
	pcm := sine(1000, 8000, 8000, 400)
	seeds := [][]byte{
		wavSpec{channels: 1, rate: 8000, data: interleave(pcm)}.bytes(),
		wavSpec{channels: 2, rate: 44100, data: interleave(pcm, pcm)}.bytes(),
		wavSpec{channels: 1, rate: 48000, tag: wavFormatExtensible, data: interleave(pcm[:10])}.bytes(),
		wavSpec{channels: 1, rate: 16000, data: interleave(pcm[:7]), dataSize: u32(wavUnknownSize), riffSize: u32(wavUnknownSize)}.bytes(),
		wavSpec{channels: 1, rate: 16000, before: []chunk{{id: "LIST", body: []byte("abc")}}, data: interleave(pcm[:3])}.bytes(),
		wavSpec{channels: 1, rate: 16000, data: interleave(pcm[:3]), dataSize: u32(1 << 29)}.bytes(),
		[]byte("RIFF"),
		[]byte("RIFF\x00\x00\x00\x00WAVE"),
		nil,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := ReadWAV(bytes.NewReader(in))
		if err != nil {
			if out != nil {
				t.Fatal("samples returned with an error")
			}
			for _, want := range []error{ErrNotWAV, ErrUnsupported, ErrCorrupt, ErrTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// At most 8 kHz mono upsampled 6x: 3 output samples per input byte.
		if len(out) > 3*len(in) {
			t.Fatalf("%d samples from %d bytes", len(out), len(in))
		}
	})
}

func FuzzDecode(f *testing.F) {
	_, pkts := speechPackets(f, 1, 100*time.Millisecond)
	for _, p := range pkts {
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{31<<3 | 3, 0x41, 200})
	f.Add([]byte{0x78, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		d := newDecoder(t)
		if pcm, err := d.Decode(p); err == nil && len(pcm) != FrameSamples {
			t.Fatalf("Decode = %d samples", len(pcm))
		}
		if pcm, err := d.DecodeFEC(p); err == nil && len(pcm) != FrameSamples {
			t.Fatalf("DecodeFEC = %d samples", len(pcm))
		}
		if pcm, err := d.Conceal(); err != nil || len(pcm) != FrameSamples {
			t.Fatalf("Conceal after fuzzed packet = %d samples, %v", len(pcm), err)
		}
	})
}

// FuzzJitterBuffer pushes packets in an order derived from the input: each
// 2 bytes give a sequence step (mostly small, sometimes huge) and which
// packet (or garbage) to send.
func FuzzJitterBuffer(f *testing.F) {
	_, pkts := speechPackets(f, 1, 200*time.Millisecond)
	f.Add([]byte{0, 0, 1, 1, 2, 2, 3, 3}, uint16(0), int8(0), int8(0))
	f.Add([]byte{1, 0, 255, 1, 2, 2, 1, 3, 5, 4, 0, 0}, uint16(65534), int8(2), int8(5))
	f.Add([]byte{0, 0, 0x80, 1, 0x7f, 2, 0xc0, 3, 0, 0}, uint16(65535), int8(-1), int8(-1))
	f.Add([]byte{3, 9, 250, 9, 1, 9, 7, 200}, uint16(100), int8(1), int8(3))
	f.Fuzz(func(t *testing.T, ops []byte, start uint16, depth, maxGap int8) {
		cfg := JitterConfig{Depth: int(depth) % 8, MaxGap: int(maxGap)}
		jb := NewJitterBuffer(newDecoder(t), cfg)
		depthLimit := max(0, cfg.Depth)
		if cfg.Depth == 0 {
			depthLimit = DefaultJitterDepth
		}
		seq := start
		var ts uint32 // RTP timestamps for PushRTP: mostly a frame a packet, sometimes jumping
		var frames, pushes int
		check := func(out [][]int16, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			for _, fr := range out {
				if len(fr) != FrameSamples {
					t.Fatalf("frame of %d samples", len(fr))
				}
			}
			frames += len(out)
		}
		for i := 0; i+1 < len(ops); i += 2 {
			step, pick := ops[i], ops[i+1]
			switch {
			case step < 0x80: // small jump forward or back
				seq += uint16(int8(step<<1) >> 1)
			case step < 0xc0:
				seq += uint16(step) << 8
			default:
				seq = uint16(step)<<8 | uint16(pick)
			}
			payload := []byte{pick}
			if int(pick) < 4*len(pkts) {
				payload = pkts[int(pick)%len(pkts)]
			}
			pushes++
			if pick%3 == 0 {
				ts = uint32(seq)*FrameSamples + uint32(step)*4*FrameSamples
				check(jb.PushRTP(seq, ts, payload))
			} else {
				check(jb.Push(seq, payload))
			}
			if h := jb.Held(); h > depthLimit {
				t.Fatalf("holding %d packets with depth %d", h, cfg.Depth)
			}
		}
		check(jb.Flush())
		st := jb.Stats()
		if got := st.Played + st.Concealed + st.RecoveredFEC + st.Filled; got != uint64(frames) {
			t.Fatalf("%d frames out, stats account for %d (%+v)", frames, got, st)
		}
		if got := st.Played + st.Invalid + st.Late + st.Duplicate + st.Empty; got != uint64(pushes) || jb.Held() != 0 {
			t.Fatalf("%d pushes, stats account for %d, %d held (%+v)", pushes, got, jb.Held(), st)
		}
		gap := int(maxGap)
		if gap == 0 {
			gap = DefaultMaxGap
		}
		// Each push: at most a gap concealed, a timestamp gap filled, and its own frame.
		if limit := pushes * (2*max(gap, 0) + 1); frames > limit {
			t.Fatalf("%d frames from %d pushes, limit %d", frames, pushes, limit)
		}
	})
}

func FuzzRawReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(make([]byte, 2*FrameSamples+3))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewRawReader(bytes.NewReader(in))
		var n int
		for {
			fr, err := r.ReadFrame()
			if err == io.EOF {
				break
			}
			if err != nil || len(fr) != FrameSamples {
				t.Fatalf("ReadFrame = %d samples, %v", len(fr), err)
			}
			for i, s := range fr {
				k := 2 * (n*FrameSamples + i)
				want := int16(0)
				if k+1 < len(in) {
					want = int16(uint16(in[k]) | uint16(in[k+1])<<8)
				}
				if s != want {
					t.Fatalf("frame %d sample %d = %d, want %d", n, i, s, want)
				}
			}
			n++
		}
		if want := (len(in)/2 + FrameSamples - 1) / FrameSamples; n != want {
			t.Fatalf("%d frames from %d bytes, want %d", n, len(in), want)
		}
	})
}
