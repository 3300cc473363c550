// Package codec is Parley's audio layer: it turns call audio into Opus
// packets and back, smooths the network's reordering and loss, and reads
// and writes the audio files and streams the CLI plays and records.
//
// All PCM is 48 kHz, mono, signed 16-bit, handled as 20 ms frames of
// [FrameSamples] samples, one frame per RTP packet.
//
//   - [Encoder] / [Decoder]: Opus (libopus through github.com/hraban/opus),
//     VoIP mode, DTX off (no silence suppression: 50 packets/s always),
//     in-band FEC on; [Decoder.DecodeFEC] and [Decoder.Conceal] fill in
//     lost packets.
//   - [JitterBuffer]: reorders received payloads by RTP sequence number and
//     yields a gap-free stream of decoded frames, using FEC or PLC for
//     packets that never came, and comfort noise for time the sender sent
//     no audio for ([EmptyPacket] heartbeats on hold).
//   - [ComfortNoise]: quiet pink noise for filling silence.
//   - [ReadWAV], [WAVWriter], [WriteWAV]: 16-bit PCM WAV files in (any rate
//     8-192 kHz, mono or stereo, converted with [Resample]) and out.
//   - [NewRawReader], [NewPCMFrameReader], [WriteRaw]: raw s16le streams and
//     in-memory audio as frames, for `--play FILE|-` and `--record FILE|-`.
//
// Nothing here is safe for concurrent use by several goroutines; use one
// Encoder, Decoder or JitterBuffer per goroutine.
package codec
