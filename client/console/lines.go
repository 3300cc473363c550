package console

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
)

// ReadLines reads r line by line on a goroutine of its own and hands over
// each non-empty line, without its line ending, on lines. Lines may be of any
// length (a message too long is refused whole, not cut). When r ends, done
// receives nil (after the last line was taken), or the read error. The
// goroutine ends then, or when ctx ends while it waits to hand over a line;
// a Read blocked on r ends only when r does (a terminal's stdin: at exit).
func ReadLines(ctx context.Context, r io.Reader) (lines <-chan string, done <-chan error) {
	lc := make(chan string)
	dc := make(chan error, 1)
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				select {
				case lc <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				dc <- err
				return
			}
		}
	}()
	return lc, dc
}
