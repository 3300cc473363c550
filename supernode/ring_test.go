package supernode

import (
	"fmt"
	"slices"
	"testing"
)

func TestRingOwners(t *testing.T) {
	names := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
	r := newRing(names)
	counts := map[string]int{}
	for i := 0; i < 5000; i++ {
		u := fmt.Sprintf("user%d", i)
		got := r.owners(u, 3)
		if len(got) != 3 {
			t.Fatalf("owners(%s) = %v, want 3 distinct", u, got)
		}
		counts[got[0]]++
	}
	for _, n := range names {
		if c := counts[n]; c < 500 || c > 1500 {
			t.Errorf("%s is first owner of %d/5000 users, want about 1000", n, c)
		}
	}
	if got := newRing(names[:2]).owners("x", 3); len(got) != 2 {
		t.Errorf("owners on a 2-node ring = %v, want both", got)
	}
	if got := newRing(nil).owners("x", 3); got != nil {
		t.Errorf("owners on an empty ring = %v, want none", got)
	}
}

// Removing one supernode moves only the records it held.
func TestRingStability(t *testing.T) {
	names := []string{"a:1", "b:1", "c:1", "d:1", "e:1", "f:1"}
	before, after := newRing(names), newRing(slices.Delete(slices.Clone(names), 2, 3))
	moved := 0
	for i := 0; i < 3000; i++ {
		u := fmt.Sprintf("user%d", i)
		b, a := before.owners(u, 1)[0], after.owners(u, 1)[0]
		if b != a {
			moved++
			if b != "c:1" {
				t.Fatalf("%s moved from %s to %s, though %s is still there", u, b, a, b)
			}
		}
	}
	if moved == 0 || moved > 1000 {
		t.Errorf("%d/3000 users moved; want about 500", moved)
	}
}
