package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/parley/parley/internal/netlab"
)

// Browsers in the network lab: headless Chromium runs inside a lab host's
// namespace, so its calls cross the lab's routers like any other device's.
// chromedp drives it over the DevTools pipe (file descriptors 3 and 4),
// which `ip netns exec` passes through.

// newBrowserOn starts Chromium on lab host h with its microphone playing wav
// (looping). origin, the page's (http, not a secure context), is treated as
// secure, as a page served over TLS would be.
func newBrowserOn(t testing.TB, h *netlab.Host, wav, origin string) *browser {
	t.Helper()
	exe := chromiumPath(t)
	wrapper := filepath.Join(t.TempDir(), "chromium-in-"+h.Name)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", h.NS, exe)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return newBrowser(t, wav, chromedp.ExecPath(wrapper), chromedp.Flag("unsafely-treat-insecure-origin-as-secure", origin))
}
