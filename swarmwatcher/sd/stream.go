package sd

import (
	"bufio"
	"bytes"
	"io"
)

// maxLine bounds one line of the event stream; the snapshot of a large swarm
// is the longest line.
const maxLine = 8 << 20

// streamEvent is one server-sent event.
type streamEvent struct {
	id   string
	name string // "" when the event has no "event:" field
	data []byte
}

// streamReader parses text/event-stream (the WHATWG server-sent events
// format): fields "id", "event" and "data" (several data lines join with
// "\n"), comments starting with ":", an empty line ending each event. An
// event cut off by the end of the stream is dropped, never dispatched.
type streamReader struct {
	sc *bufio.Scanner
}

func newStreamReader(r io.Reader) *streamReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &streamReader{sc: sc}
}

// next returns the next complete event. onLine is called for every line read
// (keepalive comments included) so a caller can tell a quiet feed from a
// dead one. At the end of the stream it returns io.ErrUnexpectedEOF.
func (r *streamReader) next(onLine func()) (streamEvent, error) {
	var (
		ev      streamEvent
		data    bytes.Buffer
		hasData bool
		started bool
	)
	for r.sc.Scan() {
		onLine()
		line := r.sc.Bytes()
		if len(line) == 0 {
			if !started {
				continue
			}
			if hasData {
				ev.data = bytes.Clone(data.Bytes())
				return ev, nil
			}
			ev, started = streamEvent{}, false // an event without data is not dispatched
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
			ev.name = string(value)
		case "id":
			ev.id = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
	if err := r.sc.Err(); err != nil {
		return streamEvent{}, err
	}
	return streamEvent{}, io.ErrUnexpectedEOF
}
