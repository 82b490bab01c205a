// Package bench turns the raw files that gatling/bench.sh collects (gatling
// stats.json files, docker stats samples, docker inspect and events output,
// wrk's text) into the benchmark's table of figures P1 … P10.
package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goblog/goblog/gatling/internal/report"
)

// LoadStats reads a gatling stats.json.
func LoadStats(path string) (report.Stats, error) {
	var s report.Stats
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read stats: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse %s: %w", path, err)
	}
	return s, nil
}

// Usage is a container's resource use over the samples taken during a run.
type Usage struct {
	Name       string
	Samples    int
	CPUPercent float64 // mean of the samples, percent of one core
	MemMiB     float64 // highest sample
}

// ParseDockerStats reads the JSON lines of `docker stats --no-stream
// --format '{{json .}}'`, possibly several samples, and averages CPU and
// keeps the peak memory per container name. Lines that are not JSON
// objects (a blank line, a warning) are skipped.
func ParseDockerStats(r io.Reader) (map[string]Usage, error) {
	out := map[string]Usage{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sums := map[string]float64{}
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var row struct{ Name, CPUPerc, MemUsage string }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			return nil, fmt.Errorf("docker stats line %q: %w", line, err)
		}
		cpu, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(row.CPUPerc), "%"), 64)
		if err != nil {
			continue // "--" while a container starts or stops
		}
		used, _, _ := strings.Cut(row.MemUsage, "/")
		mem, err := parseSize(strings.TrimSpace(used))
		if err != nil {
			continue
		}
		u := out[row.Name]
		u.Name = row.Name
		u.Samples++
		sums[row.Name] += cpu
		u.MemMiB = max(u.MemMiB, mem/(1<<20))
		out[row.Name] = u
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read docker stats: %w", err)
	}
	for k, u := range out {
		u.CPUPercent = round2(sums[k] / float64(u.Samples))
		u.MemMiB = round2(u.MemMiB)
		out[k] = u
	}
	return out, nil
}

var sizeRE = regexp.MustCompile(`^([0-9.]+)\s*([KMGT]i?B|B|[kMGT]B)$`)

// parseSize reads docker's sizes ("5.3MiB", "812KiB", "7.2MB", "0B") in bytes.
func parseSize(s string) (float64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("size %q", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	mult := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[m[2]]
	return v * mult, nil
}

// Container is one container of `docker inspect` output.
type Container struct {
	ID      string
	Name    string // without the leading slash
	Service string
	// IPs by network name.
	IPs map[string]string
}

// ParseContainers reads the JSON array printed by `docker inspect` on containers.
func ParseContainers(r io.Reader) ([]Container, error) {
	var raw []struct {
		ID     string `json:"Id"`
		Name   string
		Config struct {
			Labels map[string]string
		}
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse docker inspect: %w", err)
	}
	out := make([]Container, 0, len(raw))
	for _, c := range raw {
		k := Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Service: c.Config.Labels["com.docker.swarm.service.name"], IPs: map[string]string{}}
		for n, v := range c.NetworkSettings.Networks {
			k.IPs[n] = v.IPAddress
		}
		out = append(out, k)
	}
	return out, nil
}

// Wrk is what wrk --latency reports.
type Wrk struct {
	Connections int
	P50Ms       float64
	P99Ms       float64
	ReqPerSec   float64
	Requests    int64
	Errors      string // wrk's socket errors / non-2xx line, if any
}

var (
	wrkConnRE = regexp.MustCompile(`(\d+) threads and (\d+) connections`)
	wrkPctRE  = regexp.MustCompile(`^\s*(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkRPSRE  = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)`)
	wrkReqRE  = regexp.MustCompile(`^\s*(\d+) requests in`)
)

// ParseWrk reads wrk's output (run with --latency).
func ParseWrk(r io.Reader) (Wrk, error) {
	var w Wrk
	sc := bufio.NewScanner(r)
	var seen50, seenRPS bool
	for sc.Scan() {
		line := sc.Text()
		if m := wrkConnRE.FindStringSubmatch(line); m != nil {
			w.Connections, _ = strconv.Atoi(m[2])
		}
		if m := wrkPctRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			v *= map[string]float64{"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m[3]]
			if m[1] == "50" {
				w.P50Ms, seen50 = round3(v), true
			} else {
				w.P99Ms = round3(v)
			}
		}
		if m := wrkRPSRE.FindStringSubmatch(line); m != nil {
			w.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
			seenRPS = true
		}
		if m := wrkReqRE.FindStringSubmatch(line); m != nil {
			w.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "Socket errors") || strings.HasPrefix(t, "Non-2xx") {
			w.Errors = strings.TrimSpace(strings.Join([]string{w.Errors, t}, " "))
		}
	}
	if err := sc.Err(); err != nil {
		return w, fmt.Errorf("read wrk output: %w", err)
	}
	if !seen50 || !seenRPS {
		return w, errors.New("wrk output has no latency distribution or Requests/sec (was it run with --latency?)")
	}
	return w, nil
}

// StartToHealthy is how long one container took from start to healthy.
type StartToHealthy struct {
	Service   string
	Container string
	Seconds   float64
}

// ParseEvents reads `docker events --format '{{json .}}'` and pairs each
// container's start with its first health_status: healthy after it.
func ParseEvents(r io.Reader) ([]StartToHealthy, error) {
	type ev struct {
		Type     string
		Action   string
		TimeNano int64 `json:"timeNano"`
		Actor    struct {
			ID         string
			Attributes map[string]string
		}
	}
	started := map[string]ev{}
	var out []StartToHealthy
	dec := json.NewDecoder(r)
	for {
		var e ev
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the end, or a last line cut when the stream was stopped
		}
		if err != nil {
			return nil, fmt.Errorf("parse docker events: %w", err)
		}
		if e.Type != "container" {
			continue
		}
		switch e.Action {
		case "start":
			started[e.Actor.ID] = e
		case "health_status: healthy":
			s, ok := started[e.Actor.ID]
			if !ok {
				continue
			}
			delete(started, e.Actor.ID)
			out = append(out, StartToHealthy{
				Service:   s.Actor.Attributes["com.docker.swarm.service.name"],
				Container: s.Actor.Attributes["name"],
				Seconds:   round3(time.Duration(e.TimeNano - s.TimeNano).Seconds()),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Container < out[j].Container
	})
	return out, nil
}

// Image is one image's name and size.
type Image struct {
	Tag   string
	Bytes int64
}

// ParseImages reads the JSON array printed by `docker image inspect`.
func ParseImages(r io.Reader) ([]Image, error) {
	var raw []struct {
		RepoTags []string
		Size     int64
	}
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse docker image inspect: %w", err)
	}
	var out []Image
	for _, im := range raw {
		tag := "<none>"
		for i, t := range im.RepoTags { // the :latest name when it has one
			if i == 0 || strings.HasSuffix(t, ":latest") {
				tag = t
			}
		}
		out = append(out, Image{Tag: tag, Bytes: im.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out, nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
