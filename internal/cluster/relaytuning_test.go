package cluster

import (
	"flag"
	"io"
	"testing"
)

func TestRelayTuningFlags(t *testing.T) {
	tests := []struct {
		args []string
		want RelayTuning
	}{
		{nil, RelayTuning{}},
		{[]string{"--relay-max-allocations", "-1", "--relay-user-bandwidth", "1048576"},
			RelayTuning{MaxAllocationsPerUser: -1, UserBandwidth: 1 << 20}},
		{[]string{"--relay-socket-buffer", "4194304", "--relay-alloc-socket-buffer", "-1"},
			RelayTuning{SocketBuffer: 4 << 20, RelaySocketBuffer: -1}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("relay", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var got RelayTuning
		got.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got != tt.want {
			t.Errorf("%v: got %+v, want %+v", tt.args, got, tt.want)
		}
	}
}
