package jsconst

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestGenerateIsStable(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	if !bytes.Equal(a, b) {
		t.Fatal("two runs differ")
	}
	if !bytes.HasPrefix(a, []byte(Header+"\n")) {
		t.Fatalf("does not start with %q", Header)
	}
	for _, want := range []string{
		"export const IM_MAX_ENVELOPE_BYTES = 81920;\n",
		"export const SIGNAL_WINDOW_MS = 120000;\n",
		"export const IDENTITY_SKEW_SECONDS = 60;\n",
		`export const IM_KIND_GROUP = "group";` + "\n",
		"export const IM_GROUP_SYNC_INTERVAL_MS = 10000;\n",
		`export const SIGNAL_SDP_KINDS = ["offer", "answer", "re-offer", "re-answer"];` + "\n",
	} {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("no line %q", strings.TrimSpace(want))
		}
	}
}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		c       constant
		want    string
		wantErr bool
	}{
		{constant{name: "A", value: 81920}, "81920", false},
		{constant{name: "A", value: `a"b</script>`}, `"a\"b</script>"`, false},
		{constant{name: "A", value: []string{"x", "y"}}, `["x", "y"]`, false},
		{constant{name: "A_MS", value: 2 * time.Minute, unit: time.Millisecond}, "120000", false},
		{constant{name: "A_SECONDS", value: time.Minute, unit: time.Second}, "60", false},
		{constant{name: "A", value: time.Minute}, "", true},                                        // no unit
		{constant{name: "A_MS", value: time.Minute, unit: time.Second}, "", true},                  // name and unit disagree
		{constant{name: "A_SECONDS", value: 1500 * time.Millisecond, unit: time.Second}, "", true}, // not whole
		{constant{name: "A", value: 1, unit: time.Second}, "", true},                               // a unit for a number
		{constant{name: "A", value: 1.5}, "", true},
	} {
		got, err := c.c.render()
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s %#v: %q, %v; want %q (error %v)", c.c.name, c.c.value, got, err, c.want, c.wantErr)
		}
	}
}
