package sse

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderFollowsTheFormat(t *testing.T) {
	in := ": keepalive\n\nid: 1\nevent: snapshot\ndata: a\ndata: b\n\n" +
		"event: no-data\n\n" + // no data: not dispatched
		"data:tight\n\n" +
		"data: cut off"
	r := NewReader(strings.NewReader(in), 1024)
	lines := 0
	var got []Event
	for {
		ev, err := r.Next(func() { lines++ })
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("end of stream: %v, want io.ErrUnexpectedEOF", err)
			}
			break
		}
		got = append(got, ev)
	}
	if len(got) != 2 {
		t.Fatalf("got %d events %+v, want 2", len(got), got)
	}
	if e := got[0]; e.ID != "1" || e.Name != "snapshot" || string(e.Data) != "a\nb" {
		t.Fatalf("first event = %+v", e)
	}
	if e := got[1]; e.Name != "" || string(e.Data) != "tight" {
		t.Fatalf("second event = %+v", e)
	}
	if lines != 12 {
		t.Fatalf("onLine called %d times, want 12", lines)
	}
}

func TestReaderBoundsTheLine(t *testing.T) {
	r := NewReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 64)
	if _, err := r.Next(nil); !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("a 106-byte line with a 64-byte limit: %v, want bufio.ErrTooLong", err)
	}
}
