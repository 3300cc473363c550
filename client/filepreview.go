package client

import (
	"bytes"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"github.com/parley/parley/client/im"
)

// Pictures' previews: a sender puts a small JPEG of a picture in its offer
// (im.FileOffer.Preview), for a receiver to show before, or instead of,
// fetching the file.
const (
	// previewSide is the longer side of a preview, in pixels.
	previewSide = 160
	// previewMaxFile and previewMaxPixels bound what is decoded for a
	// preview (a picture that would take long or much memory gets none).
	previewMaxFile   = 32 << 20
	previewMaxPixels = 50 << 20
)

// preview returns a JPEG preview of the picture in f (of media type typ),
// or nil when it is not a picture this client decodes, or too big.
func preview(f *os.File, typ string, size int64) []byte {
	var decode func(io.Reader) (image.Image, error)
	var config func(io.Reader) (image.Config, error)
	switch typ {
	case "image/jpeg":
		decode, config = jpeg.Decode, jpeg.DecodeConfig
	case "image/png":
		decode, config = png.Decode, png.DecodeConfig
	case "image/gif":
		decode, config = gif.Decode, gif.DecodeConfig
	default:
		return nil
	}
	if size > previewMaxFile {
		return nil
	}
	if c, err := config(io.NewSectionReader(f, 0, size)); err != nil || c.Width < 1 || c.Height < 1 || c.Width*c.Height > previewMaxPixels {
		return nil
	}
	img, err := decode(io.NewSectionReader(f, 0, size))
	if err != nil {
		return nil
	}
	// Nearest neighbour to previewSide on the longer side.
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := previewSide, previewSide*h/w
	if h > w {
		tw, th = previewSide*w/h, previewSide
	}
	tw, th = max(1, min(tw, w)), max(1, min(th, h))
	small := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		for x := range tw {
			small.Set(x, y, img.At(b.Min.X+x*w/tw, b.Min.Y+y*h/th))
		}
	}
	for _, q := range []int{75, 50, 30} {
		var out bytes.Buffer
		if jpeg.Encode(&out, small, &jpeg.Options{Quality: q}) == nil && out.Len() <= im.MaxPreview {
			return out.Bytes()
		}
	}
	return nil
}
