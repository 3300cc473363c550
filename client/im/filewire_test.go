package im

import "testing"

func TestFileRelayRate(t *testing.T) {
	for _, c := range []struct {
		calls, want int
	}{
		{0, 192 << 10}, // 75 % of 256 KiB/s
		{1, 176 << 10},
		{4, 128 << 10},
		{11, 16 << 10},
		{100, FileMinRelayRate}, // never under the floor
	} {
		if got := FileRelayRate(c.calls); got != c.want {
			t.Errorf("FileRelayRate(%d) = %d, want %d", c.calls, got, c.want)
		}
	}
}

// The data channel's numbers hold together: a sealed chunk is whole
// pieces, a receiver acknowledges well inside the stall at a relay's pace,
// and the low water is under the high.
func TestFileP2PConstants(t *testing.T) {
	sealed := FileChunk + AEADOverhead
	if pieces := (sealed + FileP2PPiece - 1) / FileP2PPiece; pieces != 5 {
		t.Errorf("a sealed chunk is %d pieces, want 5", pieces)
	}
	ackBytes := FileP2PAckEvery * sealed
	if secs := float64(ackBytes) / float64(FileRelayRate(0)); secs*2 > FileP2PStall.Seconds() {
		t.Errorf("an acknowledgement every %.1f s at a relay's pace; the stall is %v", secs, FileP2PStall)
	}
	if FileP2PLowWater >= FileP2PHighWater {
		t.Errorf("low water %d, high water %d", FileP2PLowWater, FileP2PHighWater)
	}
}
