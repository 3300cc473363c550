// Package icons draws the page's app icons — the PNGs a web manifest and
// phones' home screens want — from the same shapes as static/favicon.svg,
// in plain Go (no outside tool, no fetch). `go generate ./web/` writes them
// to static/icons/ (web/internal/icongen); a test of package web fails when
// a committed icon differs from what Render draws.
package icons

import (
	"image"
	"image/color"
	"math"
)

// File is one generated icon.
type File struct {
	// Path is where it lives, relative to package web's directory.
	Path string
	// Size is its width and height in pixels.
	Size int
	// Maskable: drawn full-bleed with the logo inside the safe zone (the
	// middle 80 %), for launchers that cut icons to their own shape.
	Maskable bool
}

// Files lists the icons the manifest names.
var Files = []File{
	{Path: "static/icons/icon-192.png", Size: 192},
	{Path: "static/icons/icon-512.png", Size: 512},
	{Path: "static/icons/maskable-512.png", Size: 512, Maskable: true},
	{Path: "static/icons/apple-touch-icon.png", Size: 180, Maskable: true},
}

// The logo's colours (favicon.svg).
var (
	blue  = color.NRGBA{0x1f, 0x6f, 0xeb, 0xff}
	white = color.NRGBA{0xff, 0xff, 0xff, 0xff}
)

// samples is the supersampling grid per pixel side (anti-aliasing).
const samples = 4

// Render draws the icon at size × size pixels.
func Render(size int, maskable bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			var r, g, b, a float64
			for sy := range samples {
				for sx := range samples {
					// The sample in the logo's 64 × 64 coordinates.
					u := (float64(x) + (float64(sx)+0.5)/samples) * 64 / float64(size)
					v := (float64(y) + (float64(sy)+0.5)/samples) * 64 / float64(size)
					c, ok := at(u, v, maskable)
					if !ok {
						continue
					}
					af := float64(c.A) / 255
					r += float64(c.R) * af
					g += float64(c.G) * af
					b += float64(c.B) * af
					a += af
				}
			}
			n := float64(samples * samples)
			if a == 0 {
				continue
			}
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(math.Round(r / a)), G: uint8(math.Round(g / a)), B: uint8(math.Round(b / a)),
				A: uint8(math.Round(a / n * 255)),
			})
		}
	}
	return img
}

// at is the logo's colour at (u, v) in its 64 × 64 box; ok is false where
// it is transparent (outside the rounded square).
func at(u, v float64, maskable bool) (c color.NRGBA, ok bool) {
	if maskable {
		// Full bleed; the bubble shrunk into the safe zone, centred.
		u, v = 32+(u-32)/0.78, 34.5+(v-32)/0.78
	} else if !inRoundRect(u, v, 0, 0, 64, 64, 15) {
		return color.NRGBA{}, false
	}
	c = blue
	if inRoundRect(u, v, 9, 14, 55, 46, 8) || inTriangle(u, v, 31, 46, 20, 55, 20, 45) {
		c = white
		// The sound bars, round-capped, 4 wide.
		for _, bar := range [][3]float64{{21, 28, 32}, {27, 24, 36}, {33, 20, 40}, {39, 25, 35}, {45, 28, 32}} {
			if segmentDist(u, v, bar[0], bar[1], bar[0], bar[2]) <= 2 {
				c = blue
			}
		}
	}
	return c, true
}

func inRoundRect(u, v, x0, y0, x1, y1, r float64) bool {
	if u < x0 || u > x1 || v < y0 || v > y1 {
		return false
	}
	dx := max(x0+r-u, 0, u-(x1-r))
	dy := max(y0+r-v, 0, v-(y1-r))
	return dx*dx+dy*dy <= r*r
}

func inTriangle(u, v, ax, ay, bx, by, cx, cy float64) bool {
	side := func(px, py, qx, qy float64) float64 { return (qx-px)*(v-py) - (qy-py)*(u-px) }
	d1, d2, d3 := side(ax, ay, bx, by), side(bx, by, cx, cy), side(cx, cy, ax, ay)
	neg := d1 < 0 || d2 < 0 || d3 < 0
	pos := d1 > 0 || d2 > 0 || d3 > 0
	return !(neg && pos)
}

// segmentDist is the distance from (u, v) to the segment (ax, ay)–(bx, by).
func segmentDist(u, v, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	t := 0.0
	if l := dx*dx + dy*dy; l > 0 {
		t = max(0, min(1, ((u-ax)*dx+(v-ay)*dy)/l))
	}
	return math.Hypot(u-(ax+t*dx), v-(ay+t*dy))
}
