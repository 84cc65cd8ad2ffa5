package main

import (
	"fmt"
	"io"
	"time"
)

// printer shows progress: one refreshing line on a terminal; elsewhere
// (CI, a pipe) at most one plain line per second, so logs stay readable.
type printer struct {
	out     io.Writer
	tty     bool
	last    time.Time
	width   int
	pending bool // a refreshing line is on screen
}

func newPrinter(out io.Writer, tty bool) *printer { return &printer{out: out, tty: tty} }

// line shows a progress line; force prints it even if one was printed
// less than a second ago.
func (p *printer) line(force bool, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	now := time.Now()
	if p.tty {
		if !force && now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		p.last = now
		pad := max(p.width-len(s), 0)
		fmt.Fprintf(p.out, "\r%s%*s", s, pad, "")
		p.width, p.pending = len(s), true
		return
	}
	if !force && now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	fmt.Fprintln(p.out, s)
}

// end finishes a refreshing line so the next output starts on its own.
func (p *printer) end() {
	if p.tty && p.pending {
		fmt.Fprintln(p.out)
	}
	p.pending, p.width = false, 0
}

// rateMeter is the finishing rate over the last few seconds.
type rateMeter struct {
	samples []sample
}

type sample struct {
	at time.Time
	n  int
}

const rateWindow = 5 * time.Second

// add records that n pre-saves had finished at t and returns the rate
// per second over the window.
func (m *rateMeter) add(t time.Time, n int) float64 {
	m.samples = append(m.samples, sample{t, n})
	for len(m.samples) > 2 && t.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
	first := m.samples[0]
	if d := t.Sub(first.at).Seconds(); d > 0 {
		return float64(n-first.n) / d
	}
	return 0
}
