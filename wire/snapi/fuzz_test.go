package snapi

import (
	"errors"
	"testing"
)

// DecodeFrame reads untrusted bytes from the network: whatever it accepts is
// a valid frame that encodes again.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"send","id":"1","to":"bob","payload":{"a":1}}`))
	f.Add([]byte(`{"v":2,"type":"attach"}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		if fr.V != ProtocolVersion || fr.Type == "" || len(fr.ID) > MaxIDLen {
			t.Fatalf("accepted invalid frame %+v", fr)
		}
		if _, err := EncodeFrame(fr); err != nil && !errors.Is(err, ErrFrameTooBig) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
