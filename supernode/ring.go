package supernode

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sort"
	"strconv"
)

// vnodes is how many points each supernode has on the ring: enough to spread
// users within a few percent of evenly over tens of supernodes.
const vnodes = 32

// ring is an immutable consistent-hash ring over supernode names. A user's
// presence record lives on the first Replicas distinct supernodes clockwise
// from hash(user). A ring is rebuilt, never changed, when membership changes.
type ring struct {
	points []ringPoint
	nodes  int
}

type ringPoint struct {
	hash uint64
	name string
}

func ringHash(s string) uint64 {
	h := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(h[:8])
}

func newRing(names []string) *ring {
	r := &ring{nodes: len(names)}
	for _, n := range names {
		for i := 0; i < vnodes; i++ {
			r.points = append(r.points, ringPoint{ringHash(n + "#" + strconv.Itoa(i)), n})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return cmpString(a.name, b.name)
	})
	return r
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// owners returns the n supernodes (fewer if the ring has fewer) that hold
// user's record, in ring order: the first is the one asked first.
func (r *ring) owners(user string, n int) []string {
	n = min(n, r.nodes)
	if n == 0 {
		return nil
	}
	h := ringHash("user:" + user)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	out := make([]string, 0, n)
	for j := 0; len(out) < n && j < len(r.points); j++ {
		p := r.points[(i+j)%len(r.points)]
		if !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out
}
