package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLabCallBits measures what a call costs on the wire and how late it
// is heard, between two public hosts of the lab (the call goes direct, over
// IPv4, nothing between them but a bridge).
//
//   - bits: one call of 36 s, captured with tcpdump on the caller's interface.
//     The caller plays 10 s of speech (audiotest.Speech), then digital silence;
//     the callee plays nothing (digital silence). 22 s in, the caller puts the
//     call on hold for 12 s. Reported per direction, as IPv4 bits (every IP
//     packet between the two hosts, headers included: RTP, RTCP, STUN consent
//     checks, DTLS and the data channel): speech (caller → callee, 1–9 s),
//     silence (both directions, 12–21 s) and hold (both directions, from 2 s
//     after the hold to 1 s before the resume); for silence and hold the
//     metric is the busier direction. The log breaks each down by kind of
//     packet, and lists any other UDP of the caller's once the call is up.
//   - mouth-to-ear: the caller's microphone is a pipe (--play -) that the
//     benchmark fills in real time, one 20 ms frame when its 20 ms have
//     passed, as a sound card would, with a click every 253 ms; the callee
//     records to a pipe (--record -), read as it comes. A click's
//     mouth-to-ear is from when it entered the "microphone" to when it
//     reached the callee's output pipe, as a player writing each frame out
//     at once would play it: framing, the sender's 20 ms clock, encoding,
//     packetisation, the network (a bridge), the jitter buffer, decoding and
//     the codec's own delay. Reported: median, min and max over the clicks.
//
// Needs root and tcpdump. Run: go test -run '^$' -bench LabCallBits -benchtime 1x ./cmd/parley/
func BenchmarkLabCallBits(b *testing.B) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		b.Skip("tcpdump not installed (scripts/deps.sh installs it)")
	}
	n := startNATLab(b)
	ca, err := n.lab.AddPublicHost("ba")
	must(b, err)
	cb, err := n.lab.AddPublicHost("bb")
	must(b, err)
	aenv, benv := n.user(b, ca, "bitsa"), n.user(b, cb, "bitsb")

	b.Run("bits", func(b *testing.B) {
		var speech, silence, hold, speechPPS, silencePPS, holdPPS float64
		for range b.N {
			r := bitsCall(b, ca, cb, aenv, benv)
			speech += r.speech.kbps()
			silence += max(r.silence[0].kbps(), r.silence[1].kbps())
			hold += max(r.hold[0].kbps(), r.hold[1].kbps())
			speechPPS += r.speech.pps("rtp")
			silencePPS += min(r.silence[0].pps("rtp"), r.silence[1].pps("rtp"))
			holdPPS += min(r.hold[0].pps("rtp"), r.hold[1].pps("rtp"))
		}
		N := float64(b.N)
		b.ReportMetric(speech/N, "kb/s-speech")
		b.ReportMetric(silence/N, "kb/s-silence")
		b.ReportMetric(hold/N, "kb/s-hold")
		b.ReportMetric(speechPPS/N, "rtp/s-speech")
		b.ReportMetric(silencePPS/N, "rtp/s-silence")
		b.ReportMetric(holdPPS/N, "rtp/s-hold")
	})

	b.Run("mouth-to-ear", func(b *testing.B) {
		var all []time.Duration
		for range b.N {
			all = append(all, mouthToEar(b, ca, cb, aenv, benv)...)
		}
		slices.Sort(all)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		q := func(f float64) float64 { return ms(all[int(f*float64(len(all)-1))]) }
		b.Logf("mouth-to-ear of %d clicks in %d calls: min %.1f ms, p10 %.1f, median %.1f, p90 %.1f, max %.1f",
			len(all), b.N, q(0), q(0.1), q(0.5), q(0.9), q(1))
		b.ReportMetric(ms(all[len(all)/2]), "ms-median")
		b.ReportMetric(ms(all[0]), "ms-min")
		b.ReportMetric(ms(all[len(all)-1]), "ms-max")
	})
}

// bitsResult is what one bitsCall measured: speech caller → callee, and
// silence and hold in both directions (caller → callee first).
type bitsResult struct {
	speech  trafficStats
	silence [2]trafficStats
	hold    [2]trafficStats
}

// bitsCall makes the call BenchmarkLabCallBits describes and measures it.
func bitsCall(b *testing.B, ca, cb *netlab.Host, aenv, benv []string) bitsResult {
	const (
		speechFor      = 10 * time.Second
		holdAt, holdOn = 22 * time.Second, 12 * time.Second
		callFor        = 36 * time.Second
	)
	listener := startIn(b, cb.NS, benv, "listen", "--answer", "--calls", "1", "--json")
	waitOnline(b, listener)
	pcap := filepath.Join(b.TempDir(), "call.pcap")
	stop := capture(b, ca.NS, pcap)
	out, errOut, code := runParleyIn(b, ca.NS, aenv, "call", "bitsb", "--json",
		"--play", writeWAV(b, audiotest.Speech(31, speechFor)), "--for", callFor.String(),
		"--hold-at", holdAt.String(), "--hold-for", holdOn.String())
	listener.wait(b, 15*time.Second)
	stop()
	if code != 0 {
		b.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	if p := lastField(b, out, "path"); p != "direct" {
		b.Fatalf("the call went %q, want direct", p)
	}
	connected := eventTime(b, out, "", "call", "connected")
	held := eventTime(b, out, "", "call", "held")
	resumed := eventTime(b, out, "", "call", "resumed")
	pkts := readPcapPackets(b, pcap)
	a, c := ca.IP, cb.IP
	at := func(d time.Duration) time.Time { return connected.Add(d) }
	r := bitsResult{
		speech:  traffic(pkts, a, c, at(time.Second), at(speechFor-time.Second)),
		silence: [2]trafficStats{traffic(pkts, a, c, at(speechFor+2*time.Second), at(holdAt-time.Second)), traffic(pkts, c, a, at(speechFor+2*time.Second), at(holdAt-time.Second))},
		hold:    [2]trafficStats{traffic(pkts, a, c, held.Add(2*time.Second), resumed.Add(-time.Second)), traffic(pkts, c, a, held.Add(2*time.Second), resumed.Add(-time.Second))},
	}
	b.Logf("speech, caller → callee: %s", r.speech)
	b.Logf("silence, caller → callee: %s", r.silence[0])
	b.Logf("silence, callee → caller: %s", r.silence[1])
	b.Logf("hold, caller → callee: %s", r.hold[0])
	b.Logf("hold, callee → caller: %s", r.hold[1])
	// The caller's other UDP once the call is up (to and from the server:
	// STUN, TURN refreshes), which is not the call's but goes with it.
	other := map[string]int{}
	from := at(time.Second)
	for _, p := range pkts {
		if p.proto == 17 && !p.at.Before(from) && !(p.src == a && p.dst == c || p.src == c && p.dst == a) {
			other[fmt.Sprintf("%s:%d→%s:%d %s", p.src, p.srcPort, p.dst, p.dstPort, packetKind(p.payload))] += p.ipLen
		}
	}
	if len(other) == 0 {
		b.Logf("no other UDP from or to the caller from 1 s after connecting")
	}
	span := pkts[len(pkts)-1].at.Sub(from).Seconds()
	for k, n := range other {
		b.Logf("other UDP of the caller, from 1 s after connecting: %s: %d bytes, %.2f kb/s", k, n, float64(n)*8/span/1000)
	}
	return r
}

// capture starts tcpdump on eth0 in namespace ns, writing every UDP packet's
// headers to pcap; the returned function stops it and waits for the file.
func capture(tb testing.TB, ns, pcap string) (stop func()) {
	tb.Helper()
	dump := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", "eth0", "-U", "-s", "128", "-w", pcap, "udp")
	var dumpErr lockedBuffer
	dumpErr.mu, dumpErr.b = &sync.Mutex{}, &bytes.Buffer{}
	dump.Stderr = dumpErr
	must(tb, dump.Start())
	for i := 0; i < 50; i++ {
		dumpErr.mu.Lock()
		ok := strings.Contains(dumpErr.b.String(), "listening")
		dumpErr.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			dump.Process.Signal(os.Interrupt)
			dump.Wait()
		})
	}
	tb.Cleanup(stop)
	return stop
}

// packetKind classifies a UDP payload of a WebRTC 5-tuple (RFC 7983).
func packetKind(p []byte) string {
	switch {
	case len(p) == 0:
		return "other"
	case p[0] <= 3:
		return "stun"
	case p[0] >= 20 && p[0] <= 63:
		return "dtls"
	case p[0] >= 128 && p[0] <= 191:
		if len(p) > 1 && p[1] >= 192 && p[1] <= 223 {
			return "rtcp"
		}
		return "rtp"
	}
	return "other"
}

// trafficStats is one direction of a call over a stretch of time.
type trafficStats struct {
	dur     time.Duration
	bytes   map[string]int // IPv4 bytes by packetKind
	packets map[string]int
}

// traffic sums the packets from src to dst within [from, to).
func traffic(pkts []capturedPacket, src, dst netip.Addr, from, to time.Time) trafficStats {
	s := trafficStats{dur: to.Sub(from), bytes: map[string]int{}, packets: map[string]int{}}
	for _, p := range pkts {
		if p.proto != 17 || p.src != src || p.dst != dst || p.at.Before(from) || !p.at.Before(to) {
			continue
		}
		k := packetKind(p.payload)
		s.bytes[k] += p.ipLen
		s.packets[k]++
	}
	return s
}

// kbps is the IPv4 bit rate of everything, in kbit/s.
func (s trafficStats) kbps() float64 {
	var n int
	for _, v := range s.bytes {
		n += v
	}
	return float64(n) * 8 / s.dur.Seconds() / 1000
}

func (s trafficStats) pps(kind string) float64 { return float64(s.packets[kind]) / s.dur.Seconds() }

func (s trafficStats) String() string {
	var parts []string
	for _, k := range []string{"rtp", "rtcp", "stun", "dtls", "other"} {
		if s.packets[k] == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.2f kb/s (%.1f packets/s of %.1f bytes)", k,
			float64(s.bytes[k])*8/s.dur.Seconds()/1000, s.pps(k), float64(s.bytes[k])/float64(s.packets[k])))
	}
	return fmt.Sprintf("%.2f kb/s over %v: %s", s.kbps(), s.dur.Round(100*time.Millisecond), strings.Join(parts, ", "))
}

// mouthToEar makes one call whose caller's microphone plays a click train in
// real time and returns each click's mouth-to-ear time (see
// BenchmarkLabCallBits).
func mouthToEar(b *testing.B, ca, cb *netlab.Host, aenv, benv []string) []time.Duration {
	const (
		clicksFor = 8 * time.Second
		period    = 253 * time.Millisecond // not a whole number of frames: every phase within a frame
	)
	// The callee records raw audio to a pipe, each read timestamped.
	callee := exec.Command("ip", "netns", "exec", cb.NS, parleyBin, "listen", "--answer", "--calls", "1", "--json", "--record", "-")
	callee.Env = append(os.Environ(), benv...)
	recOut, err := callee.StdoutPipe()
	must(b, err)
	var calleeErr lockedBuffer
	calleeErr.mu, calleeErr.b = &sync.Mutex{}, &bytes.Buffer{}
	callee.Stderr = calleeErr
	must(b, callee.Start())
	defer callee.Process.Kill()
	type chunk struct {
		end int // bytes read so far
		at  time.Time
	}
	var rec []byte
	var chunks []chunk
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := recOut.Read(buf)
			now := time.Now()
			if n > 0 {
				rec = append(rec, buf[:n]...)
				chunks = append(chunks, chunk{len(rec), now})
			}
			if err != nil {
				return
			}
		}
	}()
	waitBuffer(b, calleeErr, `"event":"online"`, 15*time.Second)

	caller := exec.Command("ip", "netns", "exec", ca.NS, parleyBin, "call", "bitsb", "--json", "--play", "-", "--for", (clicksFor + 2*time.Second).String())
	caller.Env = append(os.Environ(), aenv...)
	mic, err := caller.StdinPipe()
	must(b, err)
	var callerOut lockedBuffer
	callerOut.mu, callerOut.b = &sync.Mutex{}, &bytes.Buffer{}
	caller.Stdout, caller.Stderr = callerOut, callerOut
	must(b, caller.Start())
	defer caller.Process.Kill()
	waitBuffer(b, callerOut, `"state":"connected"`, 15*time.Second)

	// The microphone: frame i is written when its 20 ms have passed.
	pcm, at := audiotest.Clicks(100*time.Millisecond, period, clicksFor)
	frames := len(pcm) / codec.FrameSamples
	written := make([]time.Time, frames)
	start := time.Now()
	buf := make([]byte, 2*codec.FrameSamples)
	for i := range frames {
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * codec.FrameDuration)))
		for k, v := range pcm[i*codec.FrameSamples : (i+1)*codec.FrameSamples] {
			binary.LittleEndian.PutUint16(buf[2*k:], uint16(v))
		}
		if _, err := mic.Write(buf); err != nil {
			b.Fatal(err)
		}
		written[i] = time.Now()
	}
	mic.Close()
	callerDone := make(chan error, 1)
	go func() { callerDone <- caller.Wait() }()
	select {
	case err := <-callerDone:
		if err != nil {
			b.Fatalf("call: %v\n%s", err, callerOut.b.String())
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("call still running\n%s", callerOut.b.String())
	}
	select {
	case <-readDone:
	case <-time.After(15 * time.Second):
		b.Fatalf("the callee did not finish\n%s", calleeErr.b.String())
	}
	callee.Wait()

	got := make([]int16, len(rec)/2)
	for i := range got {
		got[i] = int16(binary.LittleEndian.Uint16(rec[2*i:]))
	}
	found := audiotest.FindClicks(got, period/2)
	// When each source click entered the microphone, and when each found
	// click came out.
	rate := float64(codec.SampleRate)
	mouth := make([]time.Time, len(at))
	for k, s := range at {
		i, o := s/codec.FrameSamples, s%codec.FrameSamples
		mouth[k] = written[i].Add(-time.Duration(float64(codec.FrameSamples-o) / rate * float64(time.Second)))
	}
	var out []time.Duration
	for _, r := range found {
		frameEnd := 2 * (r/codec.FrameSamples + 1) * codec.FrameSamples
		ci, _ := slices.BinarySearchFunc(chunks, frameEnd, func(c chunk, n int) int { return c.end - n })
		if ci == len(chunks) {
			continue
		}
		arrived := chunks[ci].at
		// The frame plays from when it arrived; the click within it later.
		ear := arrived.Add(time.Duration(float64(r%codec.FrameSamples) / rate * float64(time.Second)))
		k := -1
		for j := range mouth {
			if !mouth[j].After(ear) {
				k = j
			}
		}
		if k < 0 {
			continue
		}
		out = append(out, ear.Sub(mouth[k]))
	}
	if len(out) < len(at)*9/10 {
		b.Fatalf("found %d of %d clicks in the recording", len(out), len(at))
	}
	return out
}

// waitBuffer waits until buf holds want.
func waitBuffer(tb testing.TB, buf lockedBuffer, want string, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		buf.mu.Lock()
		ok := strings.Contains(buf.b.String(), want)
		buf.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	buf.mu.Lock()
	defer buf.mu.Unlock()
	tb.Fatalf("no %s within %v:\n%s", want, d, buf.b.String())
}
