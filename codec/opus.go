package codec

import (
	"fmt"
	"time"

	"github.com/hraban/opus"
)

// Audio format used for every Parley call: 48 kHz, mono, 16-bit, 20 ms frames.
const (
	// SampleRate is the sample rate of all PCM this package produces and
	// consumes (except ReadWAV input and Resample), in Hz.
	SampleRate = 48000
	// Channels is the number of audio channels (mono).
	Channels = 1
	// FrameDuration is the duration of one Opus frame / RTP packet.
	FrameDuration = 20 * time.Millisecond
	// FrameSamples is the number of samples in one 20 ms frame at 48 kHz mono.
	FrameSamples = 960
	// MaxPacketSize is the largest Opus packet the encoder produces, in bytes.
	MaxPacketSize = 1275
)

// Encoder defaults, applied for zero Config fields. 17 kbit/s with 15%
// expected loss is where libopus 1.3 codes speech in SILK mid-band (audio to
// 6 kHz) with in-band FEC in the voiced frames: about 35 bytes a frame, so a
// call costs about 35 kbit/s a direction at the IP layer. libopus gives FEC
// to wide-band speech only from about 24 kbit/s. docs/codec.md has the
// measurements.
const (
	DefaultBitrate        = 17000
	DefaultComplexity     = 9
	DefaultPacketLossPerc = 15
)

// EncoderConfig tunes NewEncoder. The zero value gives the defaults.
//
// Complexity and PacketLossPerc use the same rule: 0 means "default", a
// positive value is used as given, and -1 selects the literal libopus value
// 0 (lowest complexity / no expected loss). Anything else is ErrConfig.
type EncoderConfig struct {
	// Bitrate is the target bit rate in bits/s, 6000..300000 (the most
	// libopus uses for mono); 0 = 17000.
	Bitrate int
	// Complexity is the libopus encoder complexity: 1..10 as given,
	// 0 = default 9, -1 = libopus complexity 0 (cheapest).
	Complexity int
	// PacketLossPerc is the expected packet loss in percent, used by
	// libopus to size the in-band FEC: 1..100 as given, 0 = 15,
	// -1 = expect no loss (libopus then codes no FEC). Above 5%, libopus
	// narrows the audio band until the bit rate leaves room for FEC; at
	// 5% or less it codes FEC only when the rate allows it at full band.
	PacketLossPerc int
}

// Encoder turns 20 ms frames of 48 kHz mono PCM into Opus packets.
//
// Settings: application VoIP, DTX off (every frame yields a packet, so
// packets flow at 50/s even in silence; there is no silence suppression),
// in-band FEC on, VBR (libopus default, constrained). An Encoder is not safe
// for concurrent use.
type Encoder struct {
	enc *opus.Encoder
	buf [MaxPacketSize]byte
}

// NewEncoder returns an Opus encoder for 48 kHz mono VoIP audio configured
// by cfg (see EncoderConfig for defaults). Errors wrap ErrConfig for fields
// out of range.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	bitrate := cfg.Bitrate
	if bitrate == 0 {
		bitrate = DefaultBitrate
	}
	if bitrate < 6000 || bitrate > 300000 {
		return nil, fmt.Errorf("codec: new encoder: bitrate %d: %w", cfg.Bitrate, ErrConfig)
	}
	complexity, err := zeroDefault(cfg.Complexity, DefaultComplexity, 10)
	if err != nil {
		return nil, fmt.Errorf("codec: new encoder: complexity %d: %w", cfg.Complexity, err)
	}
	loss, err := zeroDefault(cfg.PacketLossPerc, DefaultPacketLossPerc, 100)
	if err != nil {
		return nil, fmt.Errorf("codec: new encoder: packet loss %d%%: %w", cfg.PacketLossPerc, err)
	}

	enc, err := opus.NewEncoder(SampleRate, Channels, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("codec: new encoder: %w", err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"bitrate", func() error { return enc.SetBitrate(bitrate) }},
		{"complexity", func() error { return enc.SetComplexity(complexity) }},
		{"dtx", func() error { return enc.SetDTX(false) }},
		{"vbr", func() error { return enc.SetVBR(true) }},
		{"fec", func() error { return enc.SetInBandFEC(true) }},
		{"packet loss", func() error { return enc.SetPacketLossPerc(loss) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("codec: new encoder: set %s: %w", s.name, err)
		}
	}
	return &Encoder{enc: enc}, nil
}

// zeroDefault applies the "0 = default, -1 = literal 0" rule.
func zeroDefault(v, def, max int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v == -1:
		return 0, nil
	case v >= 1 && v <= max:
		return v, nil
	}
	return 0, ErrConfig
}

// Encode encodes one frame. pcm must be exactly FrameSamples samples long,
// otherwise the error wraps ErrFrameSize. The returned packet is a fresh
// slice the caller may keep.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if e == nil || e.enc == nil {
		return nil, fmt.Errorf("codec: encode: %w", ErrUninitialized)
	}
	if len(pcm) != FrameSamples {
		return nil, fmt.Errorf("codec: encode: %d samples, want %d: %w", len(pcm), FrameSamples, ErrFrameSize)
	}
	n, err := e.enc.Encode(pcm, e.buf[:])
	if err != nil {
		return nil, fmt.Errorf("codec: encode: %w", err)
	}
	out := make([]byte, n)
	copy(out, e.buf[:n])
	return out, nil
}

// Decoder turns Opus packets of 20 ms back into 48 kHz mono PCM, and
// conceals lost packets (FEC or PLC). A Decoder is not safe for concurrent
// use.
type Decoder struct {
	dec *opus.Decoder
}

// NewDecoder returns an Opus decoder for 48 kHz mono.
func NewDecoder() (*Decoder, error) {
	dec, err := opus.NewDecoder(SampleRate, Channels)
	if err != nil {
		return nil, fmt.Errorf("codec: new decoder: %w", err)
	}
	return &Decoder{dec: dec}, nil
}

// Decode decodes one packet into FrameSamples samples (a fresh slice).
// The packet must hold exactly 20 ms of audio: other durations wrap
// ErrFrameSize, empty or malformed packets wrap ErrBadPacket. A rejected
// packet does not change the decoder state.
func (d *Decoder) Decode(payload []byte) ([]int16, error) {
	if d == nil || d.dec == nil {
		return nil, fmt.Errorf("codec: decode: %w", ErrUninitialized)
	}
	if err := checkPacket(payload); err != nil {
		return nil, fmt.Errorf("codec: decode: %w", err)
	}
	pcm := make([]int16, FrameSamples)
	n, err := d.dec.Decode(payload, pcm)
	if err != nil {
		return nil, fmt.Errorf("codec: decode: %v: %w", err, ErrBadPacket)
	}
	if n != FrameSamples {
		return nil, fmt.Errorf("codec: decode: got %d samples: %w", n, ErrFrameSize)
	}
	return pcm, nil
}

// DecodeFEC recovers the frame that came BEFORE next (which was lost) from
// the in-band FEC data carried in next, and returns FrameSamples samples.
// Afterwards next itself must still be passed to Decode. If next carries no
// FEC data, libopus falls back to packet-loss concealment. Errors are as
// for Decode.
func (d *Decoder) DecodeFEC(next []byte) ([]int16, error) {
	if d == nil || d.dec == nil {
		return nil, fmt.Errorf("codec: decode fec: %w", ErrUninitialized)
	}
	if err := checkPacket(next); err != nil {
		return nil, fmt.Errorf("codec: decode fec: %w", err)
	}
	// libopus sizes FEC output from the buffer: exactly one missing frame.
	pcm := make([]int16, FrameSamples)
	if err := d.dec.DecodeFEC(next, pcm); err != nil {
		return nil, fmt.Errorf("codec: decode fec: %v: %w", err, ErrBadPacket)
	}
	return pcm, nil
}

// Conceal synthesizes one missing 20 ms frame with Opus packet-loss
// concealment (extrapolated from the previous frames, fading to silence
// over a long loss) and returns FrameSamples samples.
func (d *Decoder) Conceal() ([]int16, error) {
	if d == nil || d.dec == nil {
		return nil, fmt.Errorf("codec: conceal: %w", ErrUninitialized)
	}
	pcm := make([]int16, FrameSamples)
	if err := d.dec.DecodePLC(pcm); err != nil {
		return nil, fmt.Errorf("codec: conceal: %w", err)
	}
	return pcm, nil
}

// Opus TOC (RFC 6716 section 3.1) helpers.

// tocFrameSamples returns the duration of one frame at 48 kHz for a TOC byte.
func tocFrameSamples(toc byte) int {
	config := int(toc >> 3)
	switch {
	case config < 12: // SILK-only: 10, 20, 40, 60 ms
		return [...]int{480, 960, 1920, 2880}[config%4]
	case config < 16: // hybrid: 10, 20 ms
		return [...]int{480, 960}[config%2]
	default: // CELT-only: 2.5, 5, 10, 20 ms
		return [...]int{120, 240, 480, 960}[config%4]
	}
}

// packetSamples returns the number of 48 kHz samples a packet decodes to.
func packetSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("empty packet: %w", ErrBadPacket)
	}
	per := tocFrameSamples(p[0])
	var frames int
	switch p[0] & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0, fmt.Errorf("code 3 packet without frame count: %w", ErrBadPacket)
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0, fmt.Errorf("code 3 packet with 0 frames: %w", ErrBadPacket)
		}
	}
	return per * frames, nil
}

// checkPacket verifies that p is a non-empty packet of exactly 20 ms.
func checkPacket(p []byte) error {
	n, err := packetSamples(p)
	if err != nil {
		return err
	}
	if n != FrameSamples {
		return fmt.Errorf("packet of %d samples, want %d: %w", n, FrameSamples, ErrFrameSize)
	}
	return nil
}

// EmptyPacket returns an Opus packet that carries no audio: one TOC byte
// (SILK wide-band, 20 ms, one frame) with a frame of zero length (RFC 6716
// section 3.2.1), what an Opus DTX frame is. A call on hold sends these as
// heartbeats; [JitterBuffer] plays them as comfort noise, and a browser's
// decoder as DTX.
func EmptyPacket() []byte { return []byte{emptyTOC} }

// emptyTOC is SILK wide-band 20 ms (configuration 9), mono, code 0.
const emptyTOC = 9 << 3

// IsEmpty reports whether p is an Opus packet without audio: a lone TOC
// byte of code 0 (one frame, of zero length), as [EmptyPacket] and DTX make.
func IsEmpty(p []byte) bool { return len(p) == 1 && p[0]&3 == 0 }

// hasFEC reports whether a packet's mode (SILK or hybrid) can carry
// in-band FEC. CELT-only packets never do.
func hasFEC(p []byte) bool {
	return len(p) > 0 && p[0]>>3 < 16
}
