package client

import "testing"

// A queue that kept more than it needs for a whole second loses one frame;
// one that emptied now and then loses none.
func TestQueueTrim(t *testing.T) {
	tests := []struct {
		name  string
		lens  func(i int) int // the queue's length as frame i is taken
		keep  int
		drops int
	}{
		{"steady at 5, keep 2", func(int) int { return 5 }, 2, 3},
		{"dips to 2 each second", func(i int) int { return map[bool]int{true: 2, false: 6}[i%50 == 10] }, 2, 0},
		{"empty", func(int) int { return 0 }, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var qt queueTrim
			got := 0
			for i := range 150 {
				if qt.excess(tc.lens(i), tc.keep) {
					got++
				}
			}
			if got != tc.drops {
				t.Errorf("drops = %d, want %d", got, tc.drops)
			}
		})
	}
}
