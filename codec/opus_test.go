package codec

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestNewEncoderConfig(t *testing.T) {
	tests := []struct {
		name                        string
		cfg                         EncoderConfig
		wantErr                     error
		bitrate, complexity, lossPc int
	}{
		{"defaults", EncoderConfig{}, nil, DefaultBitrate, DefaultComplexity, DefaultPacketLossPerc},
		{"explicit", EncoderConfig{Bitrate: 24000, Complexity: 5, PacketLossPerc: 20}, nil, 24000, 5, 20},
		{"literal zeros", EncoderConfig{Complexity: -1, PacketLossPerc: -1}, nil, DefaultBitrate, 0, 0},
		{"max", EncoderConfig{Bitrate: 300000, Complexity: 10, PacketLossPerc: 100}, nil, 300000, 10, 100},
		{"bitrate too high", EncoderConfig{Bitrate: 300001}, ErrConfig, 0, 0, 0},
		{"bitrate too low", EncoderConfig{Bitrate: 5999}, ErrConfig, 0, 0, 0},
		{"bitrate negative", EncoderConfig{Bitrate: -1}, ErrConfig, 0, 0, 0},
		{"complexity 11", EncoderConfig{Complexity: 11}, ErrConfig, 0, 0, 0},
		{"complexity -2", EncoderConfig{Complexity: -2}, ErrConfig, 0, 0, 0},
		{"loss 101", EncoderConfig{PacketLossPerc: 101}, ErrConfig, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEncoder(tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewEncoder(%+v) error = %v, want %v", tt.cfg, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := func(v int, err error) int {
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if b := got(e.enc.Bitrate()); b != tt.bitrate {
				t.Errorf("bitrate = %d, want %d", b, tt.bitrate)
			}
			if c := got(e.enc.Complexity()); c != tt.complexity {
				t.Errorf("complexity = %d, want %d", c, tt.complexity)
			}
			if l := got(e.enc.PacketLossPerc()); l != tt.lossPc {
				t.Errorf("packet loss = %d, want %d", l, tt.lossPc)
			}
			if dtx, _ := e.enc.DTX(); dtx {
				t.Error("DTX is on, want off")
			}
			if fec, _ := e.enc.InBandFEC(); !fec {
				t.Error("in-band FEC is off, want on")
			}
		})
	}
}

func TestEncodeFrameSize(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n       int
		wantErr error
	}{
		{0, ErrFrameSize},
		{480, ErrFrameSize},
		{959, ErrFrameSize},
		{960, nil},
		{961, ErrFrameSize},
		{1920, ErrFrameSize},
	}
	for _, tt := range tests {
		p, err := e.Encode(make([]int16, tt.n))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Encode(%d samples) error = %v, want %v", tt.n, err, tt.wantErr)
		}
		if err == nil && (len(p) == 0 || len(p) > MaxPacketSize) {
			t.Errorf("Encode(%d samples) = %d bytes", tt.n, len(p))
		}
	}
}

func TestUninitialized(t *testing.T) {
	var e *Encoder
	if _, err := e.Encode(make([]int16, FrameSamples)); !errors.Is(err, ErrUninitialized) {
		t.Errorf("nil Encoder: %v, want ErrUninitialized", err)
	}
	var d Decoder
	if _, err := d.Decode([]byte{0x78, 0}); !errors.Is(err, ErrUninitialized) {
		t.Errorf("zero Decoder Decode: %v, want ErrUninitialized", err)
	}
	if _, err := d.DecodeFEC([]byte{0x78, 0}); !errors.Is(err, ErrUninitialized) {
		t.Errorf("zero Decoder DecodeFEC: %v, want ErrUninitialized", err)
	}
	if _, err := d.Conceal(); !errors.Is(err, ErrUninitialized) {
		t.Errorf("zero Decoder Conceal: %v, want ErrUninitialized", err)
	}
}

func TestEncodeReturnsFreshSlice(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fr := frames(sine(440, 8000, SampleRate, 2*FrameSamples))
	a, _ := e.Encode(fr[0])
	saved := append([]byte(nil), a...)
	if _, err := e.Encode(fr[1]); err != nil {
		t.Fatal(err)
	}
	if string(a) != string(saved) {
		t.Error("second Encode changed the first packet")
	}
}

func TestEncodeDecodeSineKeepsEnergy(t *testing.T) {
	for _, freq := range []float64{300, 1000, 3000} {
		in := sine(freq, 8000, SampleRate, SampleRate) // 1 s at -12 dBFS peak
		e, err := NewEncoder(EncoderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		d := newDecoder(t)
		var out []int16
		for _, f := range frames(in) {
			p, err := e.Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			pcm, err := d.Decode(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(pcm) != FrameSamples {
				t.Fatalf("Decode = %d samples, want %d", len(pcm), FrameSamples)
			}
			out = append(out, pcm...)
		}
		// Skip the codec's start-up (first 100 ms).
		skip := 5 * FrameSamples
		diff := 20 * math.Log10(rms(out[skip:])/rms(in[skip:]))
		if math.Abs(diff) > 1 {
			t.Errorf("%v Hz: level changed by %.2f dB, want within 1 dB", freq, diff)
		}
		if r := goertzelRatio(out[skip:], freq, SampleRate); r < 0.8 {
			t.Errorf("%v Hz: only %.2f of the energy at %v Hz", freq, r, freq)
		}
	}
}

func TestDTXOff(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	silence := make([]int16, FrameSamples)
	var packets int
	for i := 0; i < 100; i++ {
		p, err := e.Encode(silence)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		// With DTX, libopus would emit 1-2 byte "nothing" packets that a
		// sender then suppresses; with DTX off every frame is real.
		if len(p) <= 2 {
			t.Errorf("frame %d: %d-byte packet, want > 2 (DTX must be off)", i, len(p))
		}
		packets++
	}
	if got, want := packets, 100; got != want {
		t.Errorf("%d packets for 100 frames of silence, want %d", got, want)
	}
}

func TestPacketSamples(t *testing.T) {
	tests := []struct {
		name    string
		p       []byte
		want    int
		wantErr error
	}{
		{"empty", nil, 0, ErrBadPacket},
		{"silk 10ms", []byte{0 << 3}, 480, nil},
		{"silk 20ms", []byte{1 << 3}, 960, nil},
		{"silk 60ms", []byte{3 << 3}, 2880, nil},
		{"hybrid 20ms", []byte{15 << 3}, 960, nil},
		{"hybrid 10ms x2 (code 1)", []byte{14<<3 | 1}, 960, nil},
		{"celt 2.5ms", []byte{16 << 3}, 120, nil},
		{"celt 20ms", []byte{31 << 3}, 960, nil},
		{"celt 5ms code 3 x4", []byte{17<<3 | 3, 4}, 960, nil},
		{"code 3 without count", []byte{31<<3 | 3}, 0, ErrBadPacket},
		{"code 3 zero frames", []byte{31<<3 | 3, 0}, 0, ErrBadPacket},
	}
	for _, tt := range tests {
		got, err := packetSamples(tt.p)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: packetSamples = %d, %v; want %d, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		p       []byte
		wantErr error
	}{
		{"empty", nil, ErrBadPacket},
		{"10ms packet", []byte{16<<3 | 2<<3, 0xff, 0xfe}, ErrFrameSize},
		{"40ms packet", []byte{2 << 3, 1, 2, 3}, ErrFrameSize},
		{"code 3 bad count", []byte{31<<3 | 3}, ErrBadPacket},
		{"code 3 padding exceeds packet", []byte{31<<3 | 3, 0x40 | 1, 200}, ErrBadPacket},
	}
	for _, tt := range tests {
		d := newDecoder(t)
		if _, err := d.Decode(tt.p); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: Decode error = %v, want %v", tt.name, err, tt.wantErr)
		}
		if _, err := d.DecodeFEC(tt.p); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: DecodeFEC error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

// snr returns the signal-to-error ratio of got against want, in dB.
func snr(want, got []int16) float64 {
	var s, e float64
	for i := range want {
		d := float64(want[i]) - float64(got[i])
		s += float64(want[i]) * float64(want[i])
		e += d * d
	}
	return 10 * math.Log10(s/(e+1))
}

func TestFECBeatsPLC(t *testing.T) {
	_, pkts := speechPackets(t, 1, 4*time.Second)
	clean := newDecoder(t)
	var ref [][]int16
	for _, p := range pkts {
		f, err := clean.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, f)
	}
	var fecSNR, plcSNR float64
	var n int
	for lost := 10; lost < len(pkts)-1; lost += 9 {
		if !hasFEC(pkts[lost+1]) || rms(ref[lost]) < 300 {
			continue
		}
		recover := func(useFEC bool) []int16 {
			d := newDecoder(t)
			for _, p := range pkts[:lost] {
				if _, err := d.Decode(p); err != nil {
					t.Fatal(err)
				}
			}
			var f []int16
			var err error
			if useFEC {
				f, err = d.DecodeFEC(pkts[lost+1])
			} else {
				f, err = d.Conceal()
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f) != FrameSamples {
				t.Fatalf("recovered %d samples, want %d", len(f), FrameSamples)
			}
			return f
		}
		fecSNR += snr(ref[lost], recover(true))
		plcSNR += snr(ref[lost], recover(false))
		n++
	}
	if n < 5 {
		t.Fatalf("only %d usable loss positions", n)
	}
	fecSNR /= float64(n)
	plcSNR /= float64(n)
	t.Logf("over %d lost frames: FEC SNR %.1f dB, PLC SNR %.1f dB", n, fecSNR, plcSNR)
	if fecSNR < plcSNR+3 {
		t.Errorf("FEC SNR %.1f dB not clearly better than PLC %.1f dB", fecSNR, plcSNR)
	}
}

func TestConcealBeforeAnyPacket(t *testing.T) {
	d := newDecoder(t)
	f, err := d.Conceal()
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != FrameSamples {
		t.Fatalf("Conceal = %d samples, want %d", len(f), FrameSamples)
	}
}

func TestComfortNoise(t *testing.T) {
	a, b := NewComfortNoise(1), NewComfortNoise(1)
	var all []int16
	for i := 0; i < 100; i++ {
		fa, fb := a.Frame(), b.Frame()
		if len(fa) != FrameSamples {
			t.Fatalf("Frame = %d samples, want %d", len(fa), FrameSamples)
		}
		if string(int16Bytes(fa)) != string(int16Bytes(fb)) {
			t.Fatal("same seed gave different noise")
		}
		all = append(all, fa...)
	}
	if string(int16Bytes(NewComfortNoise(2).Frame())) == string(int16Bytes(all[:FrameSamples])) {
		t.Error("different seeds gave the same noise")
	}
	if db := 20 * math.Log10(rms(all)/32768); math.Abs(db-ComfortNoiseLevel) > 1.5 {
		t.Errorf("level = %.1f dBFS, want %.0f", db, ComfortNoiseLevel)
	}
	if first := 20 * math.Log10(rms(all[:FrameSamples])/32768); math.Abs(first-ComfortNoiseLevel) > 4 {
		t.Errorf("first frame level = %.1f dBFS, want about %.0f", first, ComfortNoiseLevel)
	}
	// Pink: more energy per Hz low than high (-3 dB/octave): 250 Hz vs 8 kHz
	// is five octaves, about 15 dB.
	low, high := goertzelBand(all, 200, 300), goertzelBand(all, 7000, 9000)
	if d := 10 * math.Log10(low/high); d < 9 || d > 21 {
		t.Errorf("250 Hz is %.1f dB above 8 kHz, want about 15 (pink)", d)
	}
}

// goertzelBand averages Goertzel power over frequencies in [lo, hi].
func goertzelBand(pcm []int16, lo, hi float64) float64 {
	var sum float64
	var n int
	for f := lo; f <= hi; f += 10 {
		sum += goertzelRatio(pcm, f, SampleRate)
		n++
	}
	return sum / float64(n)
}

func int16Bytes(pcm []int16) []byte {
	return appendS16LE(nil, pcm)
}
