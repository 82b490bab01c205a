// Package feeder reads the load test's feeder file and hands its account ids
// out in a circle, like Gatling's csv(...).circular feeder: every user takes the
// next id of one shared sequence and the sequence wraps around at the end.
package feeder

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Column is the header of the column that holds the ids, as in the tutorial's
// Gatling feeder.
const Column = "accountId"

// ErrEmpty is returned when a feeder file holds a header but no id.
var ErrEmpty = errors.New("feeder has no ids")

// Parse reads a CSV feeder: a header line naming the Column (other columns
// are allowed and ignored), then one record per line. Blank lines are skipped;
// an empty id or an id that is not a plain path segment is an error naming the line.
func Parse(r io.Reader) ([]string, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("feeder is empty: want a header line with column " + Column)
	}
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	col := -1
	for i, h := range header {
		if strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) == Column {
			col = i
			break
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("header %q has no column %q", strings.Join(header, ","), Column)
	}
	var ids []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read record: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if col >= len(rec) {
			return nil, fmt.Errorf("line %d: has %d fields, no %s", line, len(rec), Column)
		}
		id := strings.TrimSpace(rec[col])
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, ErrEmpty
	}
	return ids, nil
}

func checkID(id string) error {
	if id == "" {
		return errors.New("empty " + Column)
	}
	for _, c := range id {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%s %q: only letters, digits, '-', '_' and '.' are allowed", Column, id)
		}
	}
	return nil
}

// Load parses the feeder file at path.
func Load(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open feeder: %w", err)
	}
	defer f.Close()
	ids, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("feeder %s: %w", path, err)
	}
	return ids, nil
}

// Circular hands out ids in order, wrapping around; safe for concurrent use.
type Circular struct {
	ids  []string
	next atomic.Uint64
}

// NewCircular returns a circular feeder over ids, which must not be empty.
func NewCircular(ids []string) (*Circular, error) {
	if len(ids) == 0 {
		return nil, ErrEmpty
	}
	return &Circular{ids: append([]string(nil), ids...)}, nil
}

// Next returns the next id of the shared sequence.
func (c *Circular) Next() string {
	n := c.next.Add(1) - 1
	return c.ids[n%uint64(len(c.ids))]
}

// Len is the number of distinct ids.
func (c *Circular) Len() int { return len(c.ids) }
