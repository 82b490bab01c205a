// Package sse is the one reader of server-sent event streams (the WHATWG
// text/event-stream format) in goblog: the watcher's Go client reads
// /api/events with it, turbine reads each instance's hystrix.stream with it.
package sse

import (
	"bufio"
	"bytes"
	"io"
)

// Event is one server-sent event.
type Event struct {
	ID   string
	Name string // "" when the event has no "event:" field
	Data []byte
}

// Reader parses text/event-stream: fields "id", "event" and "data" (several
// data lines join with "\n"), comments starting with ":", an empty line
// ending each event. An event cut off by the end of the stream is dropped,
// never dispatched. A line longer than the Reader's limit ends the stream
// with bufio.ErrTooLong, so one hostile peer cannot grow memory without bound.
type Reader struct {
	sc *bufio.Scanner
}

// NewReader reads r, allowing lines of up to maxLine bytes.
func NewReader(r io.Reader, maxLine int) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine)
	return &Reader{sc: sc}
}

// Next returns the next complete event. onLine, when not nil, is called for
// every line read (keepalive comments included) so a caller can tell a quiet
// feed from a dead one. At the end of the stream it returns
// io.ErrUnexpectedEOF.
func (r *Reader) Next(onLine func()) (Event, error) {
	var (
		ev      Event
		data    bytes.Buffer
		hasData bool
		started bool
	)
	for r.sc.Scan() {
		if onLine != nil {
			onLine()
		}
		line := r.sc.Bytes()
		if len(line) == 0 {
			if !started {
				continue
			}
			if hasData {
				ev.Data = bytes.Clone(data.Bytes())
				return ev, nil
			}
			ev, started = Event{}, false // an event without data is not dispatched
			continue
		}
		if line[0] == ':' {
			continue // comment, e.g. ": keepalive"
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		started = true
		switch string(field) {
		case "event":
			ev.Name = string(value)
		case "id":
			ev.ID = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.ErrUnexpectedEOF
}
